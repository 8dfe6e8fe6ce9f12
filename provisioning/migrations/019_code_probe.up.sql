-- Whether any account has this code (its lookup hash) with this birth date:
-- the opposition service's rate limits count a guess in the same statement
-- as they ask this, so that a right pair costs nothing and a wrong one is
-- counted before it is answered (optout.Limiter). PL/pgSQL keeps the
-- query's plan for the session (a SQL function with a subquery would be
-- planned again at every call); it runs with the caller's rights, and names
-- its tables with their schema rather than setting a search_path (which
-- would cost at every call).
CREATE FUNCTION ens_code_matches(code_hash bytea, birth_date date) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT FROM public.account a JOIN public.person p ON p.id = a.person_id
                   WHERE a.code_hash = ens_code_matches.code_hash AND p.birth_date = ens_code_matches.birth_date);
END $$;
