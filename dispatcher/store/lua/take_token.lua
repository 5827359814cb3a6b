-- Token bucket shared by every process (lib.lua's take_tokens): returns 0 when the tokens were
-- taken, else the ms to wait.
-- KEYS[1] bucket hash; ARGV[1] rate per second, ARGV[2] burst, ARGV[3] now ms, ARGV[4] tokens to
-- take (1 when absent)
return take_tokens(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4] or '1'))
