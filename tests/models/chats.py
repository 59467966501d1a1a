"""Chat prompts of different lengths and shapes, shared by the generation tests."""

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "hello"}],
    [
        {"role": "system", "content": "You help people learn."},
        {
            "role": "user",
            "content": "Explain why the sun is a star and the moon is not, in one long sentence.",
        },
    ],
]
