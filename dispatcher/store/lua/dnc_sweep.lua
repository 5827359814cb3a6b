-- Removes up to A.most entries of the company DNC list expired at A.now ms (K.dnc,
-- K.expiring); answers how many it removed.
return ok(purge_dnc(K.dnc, K.expiring, A.now, A.most))
