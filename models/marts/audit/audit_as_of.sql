{#- The day and school year the audit views were built for, in one row: what "as of" and "the
    audited school year" mean in every other audit view. A reader that may not build them
    (the eoy_analyst role) learns here which day an operator's build left them for. -#}
with

built as (

    select
        cast('{{ reset_as_of_date() }}' as date) as as_of_date,
        {{ reset_school_year() }} as school_year

)

select * from built
