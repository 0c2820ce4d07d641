"""LiteLLM's `custom_auth` hook for a gateway without a database (mounted next to config.yaml).

Without a database the master key is the only key LiteLLM can check, yet it answers another key with
`400 No connected db.` and a missing one with 500. This hook accepts the master key as LiteLLM itself
does (the proxy admin, under LiteLLM's alias for it, so the key never reaches logs or metrics) and
answers anything else with 401. The role sets it only while no database is configured: with one,
LiteLLM's own virtual keys answer 401 themselves.
"""

import hmac
import os

from fastapi import HTTPException, Request
from litellm.constants import LITELLM_PROXY_ADMIN_NAME, LITELLM_PROXY_MASTER_KEY_ALIAS
from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    master_key = os.environ["LITELLM_MASTER_KEY"]
    if api_key and hmac.compare_digest(api_key.encode(), master_key.encode()):
        return UserAPIKeyAuth(api_key=LITELLM_PROXY_MASTER_KEY_ALIAS, user_role=LitellmUserRoles.PROXY_ADMIN,
                              user_id=LITELLM_PROXY_ADMIN_NAME)
    raise HTTPException(status_code=401, detail="Invalid or missing API key (Authorization: Bearer <key>).")
