{#-
  The student-data tables as the audit models see them: every table the root project's
  scope declares `action: delete` (eoy_reset_declared_tables), in the declaration's order.
  Each is a mapping:
    name        the table's name in plans and the ledger: its own, or schema.table when two
                declared schemas share the name (as the runner labels it)
    table       the declared table (for eoy_reset_owned_rows: each row with its district)
    has_product true when the table has a `product` column (split per product in the ledger)
    dated_by    the row's own date: created_at when the table has one as a date or timestamp,
                else its first date or timestamp column; none when it has neither
    root_key    the key column of the scope's first deleted table (the demo's students) when
                this table carries it: a row without a date of its own is dated by that
                row's date (the student's created_at); none otherwise
    root        that first deleted table: {table, dated_by}
  Empty while dbt parses (the warehouse's columns are read when the models are built). A
  table whose owners a `rows:` model gives is left out while that model is not built (a
  plain `dbt build` may reach an audit view first; eoy-reset's plan builds it before).
-#}
{% macro audit_student_tables() -%}
    {%- set found = [] -%}
    {%- if not execute -%}{{ return(found) }}{%- endif -%}
    {%- set declared = eoy_reset_declared_tables() -%}
    {%- set ns = namespace(root=none, root_key=none) -%}
    {%- set deleted = [] -%}
    {%- for table in declared if table.decl.get('action') == 'delete' and audit_owners_built(table) -%}
        {%- do deleted.append(table) -%}
    {%- endfor -%}
    {%- set columns_of = eoy_reset_columns(deleted) -%}
    {%- for table in deleted -%}
        {%- set columns = columns_of[table.qualified] -%}
        {%- set column_names = columns | map(attribute='name') | map('lower') | list -%}
        {%- set dated = [] -%}
        {%- for column in columns -%}
            {%- set type = (column.type or '') | lower -%}
            {%- if type.startswith('timestamp') or type == 'date' -%}
                {%- do dated.append(column.name | lower) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set dated_by = 'created_at' if 'created_at' in dated else (dated[0] if dated else none) -%}
        {%- set key = table.decl.get('key') -%}
        {%- set keys = [key] if key is string else (key or []) -%}
        {%- if ns.root is none -%}
            {%- set ns.root = {'table': table, 'dated_by': dated_by} -%}
            {%- set ns.root_key = (keys[0] | lower) if keys | length == 1 else none -%}
        {%- endif -%}
        {%- set root_key = ns.root_key if (
            ns.root_key is not none and ns.root_key in column_names
            and ns.root.table.qualified != table.qualified and ns.root.dated_by is not none
        ) else none -%}
        {%- do found.append({
            'name': table.label,
            'table': table,
            'has_product': 'product' in column_names,
            'dated_by': dated_by,
            'root_key': root_key,
            'root': ns.root,
        }) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}

{#-
  audit_dated_rows(table): SQL of a student table's rows, one per (row, owning district):
  district_id (text) and row_date (the row's own date, else its root row's, else null).
  table: an item of audit_student_tables(), which names its root.
-#}
{% macro audit_dated_rows(table) -%}
    {%- set root = table.root -%}
    {%- set own = 't0.' ~ table.dated_by if table.dated_by else none -%}
    {%- if table.root_key -%}
        {%- set root_date = '(select r.' ~ root.dated_by ~ ' from ' ~ root.table.relation ~ ' as r where r.' ~ table.root_key ~ ' = t0.' ~ table.root_key ~ ')' -%}
        {%- set dated = ('coalesce(' ~ own ~ ', ' ~ root_date ~ ')') if own else root_date -%}
    {%- else -%}
        {%- set dated = own or 'cast(null as ' ~ dbt.type_timestamp() ~ ')' -%}
    {%- endif -%}
    {{ eoy_reset_owned_rows(table.table, [dated ~ ' as row_date']) }}
{%- endmacro %}

{#- Whether a table's owners can be read now: always, but for a `rows:` model not built yet
    (the table's own, or its parent's when it belongs to the owners of its parent row). -#}
{% macro audit_owners_built(table) -%}
    {%- set decl = table.decl -%}
    {%- if decl.get('of') -%}
        {{ return(audit_owners_built(eoy_reset_declared_table(table, decl.get('of').table))) }}
    {%- endif -%}
    {%- if not decl.get('rows') -%}{{ return(true) }}{%- endif -%}
    {%- set model = eoy_reset_model_relation(decl.get('rows')) -%}
    {{ return(adapter.get_relation(
        database=model.database, schema=model.schema, identifier=model.identifier
    ) is not none) }}
{%- endmacro %}
