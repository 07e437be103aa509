{#-
    eoy_reset_owned_rows(table): SQL of every owned row of a deleted table with its owning
    district (column district_id, text): its own column (district: COL), a path of joins
    (district: {via: [...], column: COL}), its parent's owners (of: {table, on}) or a dbt
    model's rows (rows: MODEL, matched on the model's columns other than district_id,
    which are the table's key columns). `table`: an item of
    eoy_reset_declared_tables(). A row with a null on its way has no owner and no row here.
    The runner compiles the same joins (jobs/scope/sql.py); the plan's counts come from here.
-#}
{% macro eoy_reset_owned_rows(table, columns=none) %}
    {%- set decl = table.decl -%}
    {%- set picked = columns or ['1 as one'] -%}
    {%- set district = decl.get('district') -%}
    {%- if district is string -%}
        select {{ picked | join(', ') }}, cast(t0.{{ district }} as {{ dbt.type_string() }}) as district_id
        from {{ table.relation }} as t0
        where t0.{{ district }} is not null
    {%- elif district is mapping -%}
        {%- set ns = namespace(left='t0', sql='') -%}
        {%- for step in district.get('via') -%}
            {%- set alias = 't' ~ loop.index -%}
            {%- set conditions = [] -%}
            {%- for own, theirs in eoy_reset_step_on(step).items() -%}
                {%- do conditions.append(ns.left ~ '.' ~ own ~ ' = ' ~ alias ~ '.' ~ theirs) -%}
            {%- endfor -%}
            {%- set ns.sql = ns.sql ~ ' join ' ~ eoy_reset_table_relation(table, step.table) ~ ' as ' ~ alias ~ ' on ' ~ conditions | join(' and ') -%}
            {%- set ns.left = alias -%}
        {%- endfor -%}
        select {{ picked | join(', ') }}, cast({{ ns.left }}.{{ district.column }} as {{ dbt.type_string() }}) as district_id
        from {{ table.relation }} as t0 {{ ns.sql }}
        where {{ ns.left }}.{{ district.column }} is not null
    {%- elif decl.get('of') -%}
        {%- set parent = eoy_reset_declared_table(table, decl.of.table) -%}
        {%- set parent_columns = [] -%}
        {%- set conditions = [] -%}
        {%- for own, theirs in eoy_reset_step_on(decl.of).items() -%}
            {%- do parent_columns.append('t0.' ~ theirs) -%}
            {%- do conditions.append('t0.' ~ own ~ ' = p.' ~ theirs) -%}
        {%- endfor -%}
        select {{ picked | join(', ') }}, p.district_id
        from {{ table.relation }} as t0
        join ({{ eoy_reset_owned_rows(parent, parent_columns) }}) as p
            on {{ conditions | join(' and ') }}
    {%- elif decl.get('rows') -%}
        {%- set model = eoy_reset_model_relation(decl.rows) -%}
        {#- the model's columns other than district_id are the table's key columns; before
            the model is built (none yet), the declared key -#}
        {%- set keys = [] -%}
        {%- for column in adapter.get_columns_in_relation(model) -%}
            {%- if column.name | lower != 'district_id' -%}{%- do keys.append(column.name) -%}{%- endif -%}
        {%- endfor -%}
        {%- if not keys -%}
            {%- set key = decl.get('key') -%}
            {%- set keys = ([key] if key is string else key) or [] -%}
        {%- endif -%}
        {%- if not keys -%}
            {{ exceptions.raise_compiler_error("rows: model " ~ decl.rows ~ " of " ~ table.qualified ~ " is not built yet and the table declares no key") }}
        {%- endif -%}
        {%- set conditions = [] -%}
        {%- for column in keys -%}
            {%- do conditions.append('t0.' ~ column ~ ' = m.' ~ column) -%}
        {%- endfor -%}
        select {{ picked | join(', ') }}, cast(m.district_id as {{ dbt.type_string() }}) as district_id
        from {{ table.relation }} as t0
        join {{ model }} as m on {{ conditions | join(' and ') }}
        where m.district_id is not null
    {%- endif -%}
{% endmacro %}

{% macro eoy_reset_declared_table(table, name) %}
    {%- set qualified = name if '.' in name else table.schema ~ '.' ~ name -%}
    {%- for other in eoy_reset_declared_tables() -%}
        {%- if other.qualified == qualified -%}{{ return(other) }}{%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("table " ~ qualified ~ " is not declared in the reset's scope") }}
{% endmacro %}

{% macro eoy_reset_table_relation(table, name) %}
    {%- set parts = name.split('.') if '.' in name else [table.schema, name] -%}
    {{ return(api.Relation.create(database=table.relation.database, schema=parts[0], identifier=parts[1])) }}
{% endmacro %}

{% macro eoy_reset_model_relation(name) %}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.name == name and node.package_name == project_name -%}
            {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)) }}
        {%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("rows: names model " ~ name ~ ", which the project does not have") }}
{% endmacro %}

{#- A step's `on:` (YAML 1.1, which dbt reads, takes a bare `on` key for true). -#}
{% macro eoy_reset_step_on(step) %}
    {{ return(step.get('on') or step.get(true) or step.get('true') or {}) }}
{% endmacro %}
