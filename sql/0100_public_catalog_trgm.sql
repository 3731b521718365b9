-- pg_trgm inside schema catalog, so the catalog's name search (ILIKE '%q%')
-- can use a trigram index. Run as the superuser (a `public` migration) rather
-- than granting the catalog role CREATE ON DATABASE: the role keeps touching
-- only its own schema. The operator class is then catalog.gin_trgm_ops.
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA catalog;
