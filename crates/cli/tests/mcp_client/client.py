#!/usr/bin/env python3
"""A real MCP client, the official Python SDK (`mcp` on PyPI), driven by the
integration tests in ../it/mcp.rs.

Reads one JSON scenario on stdin, runs it against Sever, and prints one JSON
object of what it saw on stdout; the Rust test makes the assertions. Nothing
here knows Sever's internals: it speaks MCP (and, for `oauth`, OAuth 2.1 as
the SDK's own OAuth client does).

Scenarios:
  {"scenario": "session", "transport": "http", "url": ..., "token": ...,
   "list_tools": true, "calls": [{"tool": ..., "arguments": {...}}, ...]}
  {"scenario": "session", "transport": "stdio", "command": ..., "args": [...],
   "env": {...}, ...same keys...}
  {"scenario": "oauth", "url": ..., "admin_key": ..., "email": ..., "password": ...,
   "calls": [...]}
"""

import asyncio
import base64
import hashlib
import json
import secrets
import sys
import traceback
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

TIMEOUT = 60


def dump_result(result):
    """A tools/call result as plain JSON."""
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    return {
        "is_error": bool(result.isError),
        "text": texts,
        "structured": result.structuredContent,
    }


async def run_calls(session, spec):
    out = {}
    init = await session.initialize()
    out["server_info"] = init.serverInfo.model_dump(mode="json", exclude_none=True)
    out["protocol_version"] = init.protocolVersion
    out["instructions"] = init.instructions
    if spec.get("list_tools"):
        tools = await session.list_tools()
        out["tools"] = tools.model_dump(mode="json", by_alias=True, exclude_none=True)["tools"]
    results = []
    last_id = None
    for call in spec.get("calls", []):
        # "$request_id" stands for the request id of the latest result that had one.
        args = {k: (last_id if v == "$request_id" else v) for k, v in (call.get("arguments") or {}).items()}
        try:
            r = await session.call_tool(call["tool"], args)
            results.append(dump_result(r))
            if isinstance(r.structuredContent, dict) and r.structuredContent.get("request_id"):
                last_id = r.structuredContent["request_id"]
        except Exception as e:  # a protocol error: the SDK raises McpError
            results.append({"protocol_error": str(e)})
    out["results"] = results
    return out


def first_error(e):
    """The innermost meaningful exception of an exception group."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


async def session_over_http(spec):
    headers = {}
    if spec.get("token"):
        headers["Authorization"] = f"Bearer {spec['token']}"
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=120)) as http:
        async with streamable_http_client(spec["url"], http_client=http) as (read, write, _):
            async with ClientSession(read, write) as session:
                return await run_calls(session, spec)


async def session_over_stdio(spec):
    params = StdioServerParameters(
        command=spec["command"], args=spec.get("args", []), env=spec.get("env")
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            return await run_calls(session, spec)


async def session(spec):
    runner = session_over_http if spec["transport"] == "http" else session_over_stdio
    try:
        with_timeout = asyncio.wait_for(runner(spec), TIMEOUT)
        return await with_timeout
    except BaseException as e:  # noqa: BLE001 - report whatever the client raised
        inner = first_error(e)
        status = getattr(getattr(inner, "response", None), "status_code", None)
        return {"connect_error": f"{type(inner).__name__}: {inner}", "http_status": status}


class MemoryStorage:
    """Token storage the test can read back."""

    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, info: OAuthClientInformationFull):
        self.client_info = info


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


async def oauth(spec):
    """Register, get approved, authorize with PKCE, call tools, refresh, get
    deleted, be refused: the whole life of an OAuth MCP client."""
    base = spec["url"].rsplit("/mcp", 1)[0]
    admin = {"Authorization": f"Bearer {spec['admin_key']}"}
    seen = {"steps": []}
    storage = MemoryStorage()
    pending = {}
    redirect_uri = "http://127.0.0.1:53682/callback"

    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as web:

        def note(step, **facts):
            seen["steps"].append(dict(step=step, **facts))

        async def redirect_handler(authorization_url):
            # What a browser would show first: the client is not approved yet.
            q = {k: v[0] for k, v in parse_qs(urlparse(authorization_url).query).items()}
            client_id = q["client_id"]
            seen["client_id"] = client_id
            seen["authorize_params"] = sorted(q)
            page = await web.get(authorization_url)
            note("authorize_before_approval", status=page.status_code,
                 waiting="Waiting for approval" in page.text, shows_id=client_id in page.text)
            # A token request for a client nobody approved is refused.
            early = await web.post(f"{base}/oauth/token", data={
                "grant_type": "authorization_code", "code": "sac_x", "code_verifier": "v" * 43,
                "client_id": client_id, "redirect_uri": redirect_uri})
            note("token_before_approval", status=early.status_code, body=early.json())
            # An owner or admin approves it once, over the admin API.
            info = await web.get(f"{base}/api/v1/oauth/clients/{client_id}", headers=admin)
            note("client_pending", status=info.status_code, body=info.json())
            ok = await web.post(f"{base}/api/v1/oauth/clients/{client_id}/approve", headers=admin)
            note("approve", status=ok.status_code, body=ok.json())
            page = await web.get(authorization_url)
            note("authorize_page", status=page.status_code,
                 has_form='name="password"' in page.text,
                 frame_options=page.headers.get("x-frame-options"))
            form = dict(q)
            form.update(email=spec["email"], password="not the password", decision="allow")
            wrong = await web.post(f"{base}/oauth/authorize", data=form)
            note("wrong_password", status=wrong.status_code,
                 says="Wrong email or password" in wrong.text)
            # PKCE is checked: a code exchanged with the wrong verifier is
            # refused, and burned.
            verifier, challenge = pkce()
            probe = dict(q, code_challenge=challenge, state="probe",
                         email=spec["email"], password=spec["password"], decision="allow")
            r = await web.post(f"{base}/oauth/authorize", data=probe)
            code = parse_qs(urlparse(r.headers.get("location", "")).query).get("code", [""])[0]
            bad = await web.post(f"{base}/oauth/token", data={
                "grant_type": "authorization_code", "code": code, "code_verifier": "x" * 43,
                "client_id": client_id, "redirect_uri": redirect_uri})
            again = await web.post(f"{base}/oauth/token", data={
                "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "client_id": client_id, "redirect_uri": redirect_uri})
            note("pkce_wrong_verifier", status=bad.status_code, body=bad.json(),
                 then_right_verifier=again.status_code, then_body=again.json())
            # A plain challenge is refused (S256 only), back at the redirect URI.
            plain = dict(q, code_challenge_method="plain")
            r = await web.get(f"{base}/oauth/authorize?{urlencode(plain)}")
            note("plain_pkce", status=r.status_code, location=r.headers.get("location", ""))
            # The person signs in and allows; the browser is sent back with a code.
            form.update(password=spec["password"])
            r = await web.post(f"{base}/oauth/authorize", data=form)
            location = r.headers.get("location", "")
            back = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
            note("authorized", status=r.status_code, to=location.split("?")[0],
                 has_code=bool(back.get("code")), iss=back.get("iss"))
            pending["code"] = back.get("code")
            pending["state"] = back.get("state")

        async def callback_handler():
            return pending["code"], pending["state"]

        provider = OAuthClientProvider(
            server_url=spec["url"],
            client_metadata=OAuthClientMetadata(
                client_name="sever-test-agent",
                redirect_uris=[redirect_uri],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=storage,
            redirect_handler=redirect_handler,
            callback_handler=callback_handler,
        )
        async with httpx.AsyncClient(auth=provider, timeout=httpx.Timeout(30, read=120)) as http:
            async with streamable_http_client(spec["url"], http_client=http) as (read, write, _):
                async with ClientSession(read, write) as s:
                    seen["session"] = await run_calls(s, spec)

        seen["token_scope"] = storage.tokens.scope if storage.tokens else None
        seen["registered_auth_method"] = storage.client_info.token_endpoint_auth_method
        client_id = seen["client_id"]
        access = storage.tokens.access_token
        refresh = storage.tokens.refresh_token

        # Refresh tokens rotate: the new pair works, the old refresh token is spent.
        r = await web.post(f"{base}/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id})
        note("refresh", status=r.status_code, has_access=bool(r.json().get("access_token")),
             cache=r.headers.get("cache-control"))
        new = r.json()
        r = await web.post(f"{base}/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id})
        note("refresh_reused", status=r.status_code, body=r.json())

        async def initialize_with(token):
            r = await web.post(spec["url"], headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            }, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"}}})
            return r.status_code, r.headers.get("www-authenticate", "")

        status, _ = await initialize_with(new["access_token"])
        note("new_access_token_works", status=status)

        # Deleting the client revokes its tokens: the next call is refused.
        r = await web.delete(f"{base}/api/v1/oauth/clients/{client_id}", headers=admin)
        note("delete_client", status=r.status_code)
        for name, token in [("old_access", access), ("new_access", new["access_token"])]:
            status, challenge = await initialize_with(token)
            note(f"call_after_delete_{name}", status=status, www_authenticate=challenge)
        r = await web.post(f"{base}/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": new["refresh_token"],
            "client_id": client_id})
        note("refresh_after_delete", status=r.status_code, body=r.json())
    return seen


def main():
    spec = json.load(sys.stdin)
    try:
        if spec["scenario"] == "session":
            out = asyncio.run(session(spec))
        elif spec["scenario"] == "oauth":
            out = asyncio.run(asyncio.wait_for(oauth(spec), TIMEOUT))
        else:
            raise SystemExit(f"unknown scenario {spec['scenario']!r}")
    except Exception as e:  # noqa: BLE001
        out = {"crash": f"{type(first_error(e)).__name__}: {first_error(e)}",
               "traceback": traceback.format_exc()}
    json.dump(out, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
