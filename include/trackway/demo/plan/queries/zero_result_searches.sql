-- Share of searches with no results, per city (supply gaps).
select
    city,
    avg(case when results_count = 0 then 1.0 else 0.0 end) as zero_result_share
from analytics_typed.listings_searched
group by 1
