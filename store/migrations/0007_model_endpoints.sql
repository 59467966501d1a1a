-- 0007: a variant may be served by an OpenAI-compatible inference server (vLLM, SGLang, TGI, llama.cpp,
-- Ollama, `transformers serve`). All NULL for a variant that only has local weights. A variant with an
-- endpoint and no local weights has base ''. `api_key_env` names the environment variable that holds the
-- key (an allow-listed name): the key itself is never stored. `lora_module` is the name a LoRA adapter is
-- served under (sent as the request's model), `revision` what the user says the served weights are.
ALTER TABLE models ADD COLUMN endpoint VARCHAR;
ALTER TABLE models ADD COLUMN served_model VARCHAR;
ALTER TABLE models ADD COLUMN api_key_env VARCHAR;
ALTER TABLE models ADD COLUMN revision VARCHAR;
ALTER TABLE models ADD COLUMN lora_module VARCHAR;
