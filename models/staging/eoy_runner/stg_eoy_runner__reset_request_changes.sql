with

source as (

    select * from {{ source('eoy_runner', 'reset_request_changes') }}

),

renamed as (

    select * from source

)

select * from renamed
