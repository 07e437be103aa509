with

source as (

    select * from {{ source('app', 'districts') }}

),

renamed as (

    select

        -- ids
        district_id,
        -- attributes
        name,
        state

    from source

)

select * from renamed
