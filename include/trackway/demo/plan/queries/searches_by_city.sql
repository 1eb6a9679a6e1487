-- Searches per city: the search team's weekly demand chart.
select
    city,
    count(*) as searches
from analytics_typed.listings_searched
group by 1
order by 2 desc
