"""The analyst questions the demo answers from the analytics marts.

Written in SQL that DuckDB and PostgreSQL both accept, with ``?`` parameters.
People are stitched by the transform (analytics.events.person_id), so a
visitor who signs up counts once, including their visits before signing up.
"""

DAILY_ACTIVE_USERS = """
SELECT activity_date, active_people, active_users, new_people, events
FROM analytics.daily_active_users
ORDER BY activity_date
"""

SESSIONS_PER_DAY = """
SELECT session_date,
       count(*) AS sessions,
       round(CAST(percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) AS NUMERIC) / 60, 1)
           AS median_minutes,
       round(CAST(avg(events) AS NUMERIC), 1) AS events_per_session
FROM analytics.sessions
GROUP BY session_date
ORDER BY session_date
"""

TOP_EVENTS = """
SELECT event_name, count(*) AS events, count(DISTINCT person_id) AS people
FROM analytics.events
WHERE event_type IN ('track', 'page', 'screen')
GROUP BY event_name
ORDER BY events DESC, event_name
LIMIT 8
"""

PAGE_VIEWS_BY_PATH = """
SELECT page_path, count(*) AS views, count(DISTINCT person_id) AS viewers
FROM analytics.events
WHERE event_type = 'page'
GROUP BY page_path
ORDER BY views DESC, page_path
LIMIT 8
"""

SIGNUP_CONVERSION = """
SELECT count(DISTINCT anonymous_id) AS anonymous_visitors,
       count(DISTINCT CASE WHEN event_name = 'Signed Up' THEN anonymous_id END) AS signed_up_same_day
FROM analytics.events
WHERE anonymous_id IS NOT NULL
"""

PLAN_VIOLATIONS = """
SELECT event_name, source_id, kind, coalesce(property, ''), violation_count
FROM analytics.tracking_plan_violations
ORDER BY violation_count DESC, event_name, kind
LIMIT 20
"""

LISTING_VIEWS_BY_NEIGHBOURHOOD = """
SELECT listing__city, listing__neighbourhood, count(*) AS views, count(DISTINCT listing_id) AS listings,
       count(DISTINCT listing__host_id) AS hosts, round(avg(listing__price), 2) AS avg_price
FROM analytics_x.listing_viewed
GROUP BY listing__city, listing__neighbourhood
ORDER BY views DESC, listing__city, listing__neighbourhood
LIMIT 8
"""

# The funnels declared in the plan's metrics.yaml (analytics.funnels), summed over entry days and sources.
FUNNEL_STEPS = """
SELECT funnel_name, step_number, step_name, sum(reached_people) AS people,
       round(CAST(100.0 * sum(reached_people) / sum(entered_people) AS NUMERIC), 1) AS pct_of_entered
FROM analytics.funnels
GROUP BY funnel_name, step_number, step_name
ORDER BY funnel_name DESC, step_number
"""

# Who signs up, by where they first came from: renter_activation's step 3 against its entries.
FUNNEL_BY_FIRST_TOUCH = """
SELECT first_touch_utm_source,
       sum(CASE WHEN step_number = 1 THEN reached_people ELSE 0 END) AS searched,
       sum(CASE WHEN step_number = 3 THEN reached_people ELSE 0 END) AS signed_up,
       round(CAST(100.0 * sum(CASE WHEN step_number = 3 THEN reached_people ELSE 0 END)
                  / sum(CASE WHEN step_number = 1 THEN reached_people ELSE 0 END) AS NUMERIC), 1) AS pct_signed_up
FROM analytics.funnels
WHERE funnel_name = 'renter_activation'
GROUP BY first_touch_utm_source
ORDER BY searched DESC, first_touch_utm_source
"""
