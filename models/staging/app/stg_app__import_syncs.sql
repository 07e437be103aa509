-- The table the scope declares role: syncs (or eoy-reset's own in eoy_runner).
with

source as (

    select * from {{ eoy_reset_role_relation('syncs') }}

),

renamed as (

    select

        -- ids
        sync_id,
        cast(district_id as {{ dbt.type_string() }}) as district_id,
        -- attributes
        provider,
        status,
        -- dates
        paused_at,
        resumed_at,
        last_run_at

    from source

)

select * from renamed
