-- Page views by page name.
select
    page_name,
    count(*) as views
from analytics.events
where event_name = 'Page Viewed'
group by 1
order by 2 desc
