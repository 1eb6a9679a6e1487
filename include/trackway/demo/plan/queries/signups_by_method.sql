-- Sign-ups by method and role.
select
    method,
    role,
    count(*) as signups
from analytics_typed.signed_up
group by 1, 2
