"""The analyst questions the demo answers from analytics.events.

Written in SQL that DuckDB and PostgreSQL both accept, with ``?`` parameters.
"""

# Until the users model exists, stitch identities here: an anonymousId seen
# with a userId belongs to that user, so a visitor who signs up counts once.
_PEOPLE = """
WITH known AS (
    SELECT anonymous_id, max(user_id) AS user_id
    FROM analytics.events
    WHERE anonymous_id IS NOT NULL AND user_id IS NOT NULL
    GROUP BY anonymous_id
), people AS (
    SELECT e.*, coalesce(e.user_id, known.user_id, e.anonymous_id) AS person_id
    FROM analytics.events e
    LEFT JOIN known ON known.anonymous_id = e.anonymous_id
)
"""

DAILY_ACTIVE_USERS = (
    _PEOPLE
    + """
SELECT event_date,
       count(DISTINCT person_id) AS active_people,
       count(DISTINCT user_id) AS signed_in_users,
       count(*) AS events
FROM people
GROUP BY event_date
ORDER BY event_date
"""
)

TOP_EVENTS = (
    _PEOPLE
    + """
SELECT event_name, count(*) AS events, count(DISTINCT person_id) AS people
FROM people
WHERE event_type IN ('track', 'page', 'screen')
GROUP BY event_name
ORDER BY events DESC, event_name
LIMIT 8
"""
)

PAGE_VIEWS_BY_PATH = (
    _PEOPLE
    + """
SELECT page_path, count(*) AS views, count(DISTINCT person_id) AS viewers
FROM people
WHERE event_type = 'page'
GROUP BY page_path
ORDER BY views DESC, page_path
LIMIT 8
"""
)

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
