from django.urls import path

from . import views

app_name = "relying_party"

urlpatterns = [
    path("", views.home, name="home"),
    path("start/<str:client_id>/<slug:slug>/", views.start, name="start"),
    # Registers a new client at the server (RFC 7591); then its request, answer and flow button.
    path("dynamic-registration/", views.register, name="register"),
    path("dynamic-registration/<str:name>/", views.registration, name="registration"),
    # Each client's registered redirect URI (see DemoClient.callback_path).
    path("callback/<str:client_id>/", views.callback, name="callback"),
    path("result/<str:result_id>/", views.result, name="result"),
]
