with

source as (

    select * from {{ source('eoy_runner', 'certificates') }}

),

renamed as (

    select
        -- ids
        certificate_id,
        district_id,
        school_year,
        kind,
        -- the certificate
        issued_at,
        document_sha256,
        key_fingerprint,
        written_to

    from source

)

select * from renamed
