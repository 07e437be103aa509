with

source as (

    select * from {{ source('eoy_runner', 'reset_runs') }}

),

renamed as (

    select * from source

)

select * from renamed
