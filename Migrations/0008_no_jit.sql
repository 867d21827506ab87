-- No JIT compilation for the application role. A queue's statements are short, but
-- their estimates are often wrong (the queue changes faster than ANALYZE sees), and a
-- plan whose estimated cost passes jit_above_cost spends 1-2 s compiling with LLVM before
-- its first row: measured on the batched completion (1.3 s of a 1.36 s statement).
DO $$ BEGIN
    EXECUTE format('ALTER ROLE %I SET jit = off', current_user);
END $$;
