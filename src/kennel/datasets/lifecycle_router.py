"""Dataset lifecycle routes: restore, clone, export, file upload, draft lock (issue 4)."""

from fastapi import APIRouter

router = APIRouter()
