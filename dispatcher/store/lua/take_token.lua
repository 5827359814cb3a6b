-- Token bucket shared by every process (lib.lua's take_tokens).
-- K.bucket its hash; A.bucket its rate, burst and now; A.tokens how many to take.
-- Answers the ms to wait: 0 when the tokens were taken.
return ok(take_tokens(K.bucket, A.bucket, A.tokens))
