-- delivery: the tables every checkout writes are analyzed rarely; why in
-- 0950_saga_rare_analyze.sql.
ALTER TABLE delivery.deliveries SET (autovacuum_analyze_scale_factor = 1.0, autovacuum_analyze_threshold = 100000);
ALTER TABLE delivery.delivery_history SET (autovacuum_analyze_scale_factor = 1.0, autovacuum_analyze_threshold = 100000);
