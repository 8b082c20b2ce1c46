"""JWT Secured Authorization Response Mode (JARM) for django-oauth-toolkit."""

__version__ = "0.1.0.dev0"
