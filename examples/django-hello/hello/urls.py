from django.http import HttpResponse, JsonResponse
from django.urls import path


def index(request):
    return HttpResponse("Hello from Django!\n")


def where(request):
    return JsonResponse({"path": request.path, "script_name": request.META.get("SCRIPT_NAME", "")})


urlpatterns = [path("", index), path("where", where)]
