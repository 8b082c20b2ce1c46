from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    # The demo relying party (an OAuth client of the server below): home page, callbacks, results.
    path("", include("example_project.relying_party.urls")),
    path("admin/", admin.site.urls),
    # django_jarm's include replaces include("oauth2_provider.urls"): same URL names, JARM views.
    path("o/", include("django_jarm.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
