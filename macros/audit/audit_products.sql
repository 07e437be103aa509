{#- The products of the math suite. -#}
{% macro audit_products() -%}
    {{ return(['imagine_math', 'imagine_math_facts']) }}
{%- endmacro %}
