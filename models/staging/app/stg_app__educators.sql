with

source as (

    select * from {{ source('app', 'educators') }}

),

renamed as (

    select

        -- ids
        educator_id,
        district_id,
        school_id,
        -- attributes
        email,
        first_name,
        last_name,
        role,
        -- dates
        last_login_at,
        created_at

    from source

)

select * from renamed
