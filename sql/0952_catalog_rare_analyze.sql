-- catalog: the stock tables every checkout writes are analyzed rarely; why in
-- 0950_saga_rare_analyze.sql. Not catalog.products: its list and search
-- statements are planned for their filters (custom plans), which the
-- statistics do inform.
ALTER TABLE catalog.stock_orders SET (autovacuum_analyze_scale_factor = 1.0, autovacuum_analyze_threshold = 100000);
ALTER TABLE catalog.stock_lines SET (autovacuum_analyze_scale_factor = 1.0, autovacuum_analyze_threshold = 100000);
ALTER TABLE catalog.stock_ops SET (autovacuum_analyze_scale_factor = 1.0, autovacuum_analyze_threshold = 100000);
