with

source as (

    select * from {{ source('app', 'import_syncs') }}

),

renamed as (

    select

        -- ids
        sync_id,
        district_id,
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
