-- A payment re-created from the provider's record (`payments reconcile --adopt`) is held
-- for an operator when the provider no longer holds its charge (refunded, or its record
-- gone), instead of going back to the queue: the provider said it charged the payer, so
-- charging again could take the money twice. held_reason gains adopted_charge_missing.
ALTER TABLE payment_queue DROP CONSTRAINT payment_queue_held_reason;
ALTER TABLE payment_queue
    ADD CONSTRAINT payment_queue_held_reason
    CHECK (held_reason IS NULL OR (state = 'reconciling' AND held_reason IN ('charge_mismatch', 'adopted_charge_missing')));
