-- 0004: imported pairs a person should look at. An imported pair carries a label from its dataset
-- (source 'import'), which normally takes it out of the Annotate queue; a pair listed here stays
-- in the queue until a human labels it.
CREATE TABLE review_queue (
    pair_id  BIGINT PRIMARY KEY REFERENCES pairs (id),
    added_at TIMESTAMP DEFAULT current_timestamp
);
