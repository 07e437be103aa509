with

source as (

    select * from {{ source('eoy_runner', 'legal_holds') }}

),

renamed as (

    select * from source

)

select * from renamed
