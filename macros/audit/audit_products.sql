{#- The products of the math suite (SPEC §3). -#}
{% macro audit_products() -%}
    {{ return(['imagine_math', 'imagine_math_facts']) }}
{%- endmacro %}
