-- The service's transfer protocol (transfers/engine.py, docs/design.md) as raw SQL:
-- the PENDING log committed on its own, then one transaction that locks the
-- log row and both wallets FOR NO KEY UPDATE (wallets in id order), moves
-- both legs in one UPDATE and marks the log COMPLETED.
--
-- Variables given with -D by bench/run.py:
--   client    auth_user id of the bench API client (the log's client_id)
--   run       a number unique to this pgbench invocation (keys stay unique)
--   nwallets  customer wallets 1..nwallets; wallet n has id md5('bench-wallet-' || n)::uuid
--   hot       1: every transfer debits the pool wallet (n = 0); 0: uniform pairs
--   n         0; each client counts its transfers in it (variables persist per client)
\set n :n + 1
\if :hot
\set src 0
\set dst random(1, :nwallets)
\else
\set src random(1, :nwallets)
\set dst random(1, :nwallets - 1)
\if :dst >= :src
\set dst :dst + 1
\endif
\endif
\set cents random(1, 999)
INSERT INTO transaction_logs (id, client_id, idempotency_key, movement_fingerprint, body_digest,
    source_wallet_id, destination_wallet_id, amount, currency, type, status, reference, metadata, error_code,
    error_message, created_at, updated_at, completed_at, reversal_of_id)
VALUES (md5('pgb-' || :run || '-' || :client_id || '-' || :n)::uuid, :client,
    'pgb-' || :run || '-' || :client_id || '-' || :n,
    encode(sha256(convert_to('pgb-' || :run || '-' || :client_id || '-' || :n, 'UTF8')), 'hex'),
    encode(sha256(convert_to('pgb-body-' || :run || '-' || :client_id || '-' || :n, 'UTF8')), 'hex'),
    md5('bench-wallet-' || :src)::uuid, md5('bench-wallet-' || :dst)::uuid, :cents / 100.0, 'NGN',
    'TRANSFER', 'PENDING',
    'TXN-PGB' || lpad(:run::text, 5, '0') || 'C' || lpad(:client_id::text, 3, '0') || 'N' || lpad(:n::text, 9, '0'),
    '{"bench": "pgbench"}', '', '', now(), now(), NULL, NULL);
BEGIN;
SELECT * FROM transaction_logs WHERE id = md5('pgb-' || :run || '-' || :client_id || '-' || :n)::uuid
    FOR NO KEY UPDATE;
SELECT * FROM wallets WHERE id IN (md5('bench-wallet-' || :src)::uuid, md5('bench-wallet-' || :dst)::uuid)
    ORDER BY id FOR NO KEY UPDATE;
UPDATE wallets
   SET balance = CASE WHEN id = md5('bench-wallet-' || :src)::uuid THEN balance - :cents / 100.0
                      ELSE balance + :cents / 100.0 END,
       updated_at = now()
 WHERE id IN (md5('bench-wallet-' || :src)::uuid, md5('bench-wallet-' || :dst)::uuid);
UPDATE transaction_logs SET status = 'COMPLETED', completed_at = now(), updated_at = now()
 WHERE id = md5('pgb-' || :run || '-' || :client_id || '-' || :n)::uuid;
COMMIT;
