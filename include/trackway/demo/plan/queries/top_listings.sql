-- Most viewed listings.
select
    listing_id,
    count(*) as views
from analytics_typed.listing_viewed
group by 1
order by 2 desc
limit 20
