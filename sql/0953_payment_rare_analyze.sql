-- payment: the ledger every checkout writes is analyzed rarely; why in
-- 0950_saga_rare_analyze.sql.
ALTER TABLE payment.charges SET (autovacuum_analyze_scale_factor = 1.0, autovacuum_analyze_threshold = 100000);
ALTER TABLE payment.refunds SET (autovacuum_analyze_scale_factor = 1.0, autovacuum_analyze_threshold = 100000);
