"""The analyst questions the demo answers from analytics.events.

Written in SQL that DuckDB and PostgreSQL both accept, with ``?`` parameters.
"""

DAILY_ACTIVE_USERS = """
SELECT event_date,
       count(DISTINCT coalesce(user_id, anonymous_id)) AS active_people,
       count(DISTINCT user_id) AS signed_in_users,
       count(*) AS events
FROM analytics.events
GROUP BY event_date
ORDER BY event_date
"""

TOP_EVENTS = """
SELECT event_name, count(*) AS events, count(DISTINCT coalesce(user_id, anonymous_id)) AS people
FROM analytics.events
WHERE event_type IN ('track', 'page', 'screen')
GROUP BY event_name
ORDER BY events DESC, event_name
LIMIT 8
"""

PAGE_VIEWS_BY_PATH = """
SELECT page_path, count(*) AS views, count(DISTINCT coalesce(user_id, anonymous_id)) AS viewers
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
