with

source as (

    select * from {{ source('eoy_runner', 'notices_sent') }}

),

renamed as (

    select * from source

)

select * from renamed
