"""PostgreSQL only: budget admission as one function call (one round trip instead of six)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION spendplane_reserve(
    p_request_id text, p_counter_ids bigint[], p_limits numeric[], p_amount numeric,
    p_now timestamptz, p_expires timestamptz
) RETURNS TABLE (ok boolean, failed_rule integer, figure numeric)
LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint[] := ARRAY(SELECT DISTINCT unnest(p_counter_ids) ORDER BY 1);
    locked integer;
    available numeric;
    least_left numeric := NULL;
BEGIN
    -- A reservation is a short-lived hold that expires by itself: it need not wait for the disk.
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT count(*) INTO locked FROM (
        SELECT id FROM metering_budgetcounter WHERE id = ANY(wanted) ORDER BY id FOR UPDATE
    ) AS held;
    IF locked <> cardinality(wanted) THEN
        RETURN QUERY SELECT false, -1, NULL::numeric;  -- a counter id the caller remembered is gone
        RETURN;
    END IF;
    -- Each statement below takes a fresh snapshot, after the locks: it sees what the previous
    -- holder of a lock committed (one statement that both locked and summed would not).
    FOR i IN 1 .. cardinality(p_counter_ids) LOOP
        CONTINUE WHEN p_limits[i] IS NULL;  -- a soft budget: reserved against, never blocking
        SELECT p_limits[i] - c.base_usd
               - COALESCE((SELECT sum(s.spent_usd) FROM metering_budgetspend s WHERE s.counter_id = c.id), 0)
               - COALESCE((SELECT sum(r.amount_usd) FROM metering_budgetreservation r
                           WHERE r.counter_id = c.id AND r.expires_at > p_now), 0)
          INTO available FROM metering_budgetcounter c WHERE c.id = p_counter_ids[i];
        IF p_amount > available THEN
            RETURN QUERY SELECT false, i, greatest(available, 0);
            RETURN;
        END IF;
        least_left := least(coalesce(least_left, available - p_amount), available - p_amount);
    END LOOP;
    INSERT INTO metering_budgetreservation (request_id, counter_id, amount_usd, expires_at)
    SELECT p_request_id, id, p_amount, p_expires FROM unnest(wanted) AS id
    ON CONFLICT (request_id, counter_id) DO NOTHING;
    RETURN QUERY SELECT true, 0, least_left;
END $$;
"""
DROP = "DROP FUNCTION IF EXISTS spendplane_reserve(text, bigint[], numeric[], numeric, timestamptz, timestamptz);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("metering", "0007_route_fallbacks_and_retries")]
    operations = [migrations.RunPython(create, drop)]
