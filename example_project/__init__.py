"""A demo authorization server: django-oauth-toolkit with django_jarm, on SQLite.

Start it with ``python manage.py jarm_demo`` from the repository root.
"""
