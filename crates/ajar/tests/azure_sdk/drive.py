"""Drives every operation of the Azure SDK for Python's JIT operation groups against ajar.

`SecurityCenter(...).jit_network_access_policies` (azure-mgmt-security 7.0.0) and
`ManagedApplicationsMgmtClient(...).jit_requests` (azure-mgmt-managedapplications 1.0.0b2), with
`base_url` set to ajar's root, checking that the SDK's models read back what was sent.

Environment: AJAR_URL (https://...), AJAR_CA (the CA bundle that verifies the server),
AJAR_TOKEN (an ajar API token), AJAR_ME (that token's principal), AJAR_ROLE (a role the
principal is eligible for on the application crm of rg1), AJAR_SUB, AJAR_RG.
"""

import datetime as dt
import json
import os
import ssl
import time
import urllib.error
import urllib.request

from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.mgmt.managedapplications import ManagedApplicationsMgmtClient
from azure.mgmt.managedapplications import models as am
from azure.mgmt.security import SecurityCenter
from azure.mgmt.security.v2020_01_01 import models as sm

URL, CA, TOKEN = os.environ["AJAR_URL"], os.environ["AJAR_CA"], os.environ["AJAR_TOKEN"]
ME, ROLE = os.environ["AJAR_ME"], os.environ["AJAR_ROLE"]
SUB, RG, LOC = os.environ["AJAR_SUB"], os.environ["AJAR_RG"], "westeurope"
VM = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm1"
APP = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Solutions/applications/crm"
POLICY_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Security"
    f"/locations/{LOC}/jitNetworkAccessPolicies/default"
)


class StaticToken:
    """An ajar API token as an azure-core credential."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken(TOKEN, int(time.time()) + 3600)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def raw(method, path):
    """A request without the SDK: status and JSON body."""
    req = urllib.request.Request(
        URL + path, method=method, headers={"Authorization": "Bearer " + TOKEN}
    )
    ctx = ssl.create_default_context(cafile=CA)
    try:
        with urllib.request.urlopen(req, context=ctx) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def policies():
    kw = dict(base_url=URL, connection_verify=CA, retry_total=0)
    jit = SecurityCenter(StaticToken(), SUB, **kw).jit_network_access_policies
    rule = sm.JitNetworkAccessPortRule
    sent_ports = [
        rule(number=22, protocol="*", allowed_source_address_prefix="*", max_request_access_duration="PT3H"),
        rule(number=3389, protocol="*", allowed_source_address_prefix="*", max_request_access_duration="PT3H"),
        rule(
            number=5985,
            protocol="*",
            allowed_source_address_prefixes=["192.168.0.3", "192.168.0.0/16"],
            max_request_access_duration="PT3H",
        ),
        rule(number=5986, protocol="*", allowed_source_address_prefix="*", max_request_access_duration="PT3H"),
    ]
    policy = sm.JitNetworkAccessPolicy(
        kind="Basic",
        virtual_machines=[sm.JitNetworkAccessPolicyVirtualMachine(id=VM, ports=sent_ports)],
    )
    p = jit.create_or_update(RG, LOC, "default", policy)
    expect(p.id == POLICY_ID, p.id)
    expect(p.name == "default" and p.location == LOC and p.kind == "Basic", p)
    expect(p.type == "Microsoft.Security/locations/jitNetworkAccessPolicies", p.type)
    expect(p.provisioning_state == "Succeeded", p.provisioning_state)
    vm = p.virtual_machines[0]
    expect(vm.id == VM, vm.id)
    for got, sent in zip(vm.ports, sent_ports, strict=True):
        expect(got.number == sent.number and got.protocol == sent.protocol, got)
        expect(got.max_request_access_duration == sent.max_request_access_duration, got)
        expect(got.allowed_source_address_prefix == sent.allowed_source_address_prefix, got)
        expect(
            sorted(got.allowed_source_address_prefixes or []) == sorted(sent.allowed_source_address_prefixes or []),
            got,
        )

    for listed in (
        jit.list(),
        jit.list_by_region(LOC),
        jit.list_by_resource_group(RG),
        jit.list_by_resource_group_and_region(RG, LOC),
    ):
        expect([x.id for x in listed] == [POLICY_ID], "lists")
    expect(list(jit.list_by_region("eastus")) == [], "a policy is listed at its own location only")

    end = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    port = sm.JitNetworkAccessPolicyInitiatePort
    r = jit.initiate(
        RG,
        LOC,
        "default",
        sm.JitNetworkAccessPolicyInitiateRequest(
            justification="INC-1",
            virtual_machines=[
                sm.JitNetworkAccessPolicyInitiateVirtualMachine(
                    id=VM,
                    ports=[
                        port(number=22, end_time_utc=end, allowed_source_address_prefix="203.0.113.7"),
                        port(number=5985, end_time_utc=end, allowed_source_address_prefix="192.168.0.3"),
                    ],
                )
            ],
        ),
    )
    expect(r.justification == "INC-1" and r.requestor == ME, r)
    expect(r.virtual_machines[0].id == VM, r.virtual_machines[0].id)
    states = {x.number: x.status for x in r.virtual_machines[0].ports}
    expect(states == {22: "Initiated", 5985: "Initiated"}, states)
    prefixes = {x.number: x.allowed_source_address_prefix for x in r.virtual_machines[0].ports}
    expect(prefixes == {22: "203.0.113.7", 5985: "192.168.0.3"}, prefixes)

    got = jit.get(RG, LOC, "default")
    expect(got.requests and got.requests[0].requestor == ME, got.requests)
    expect(got.requests[0].justification == "INC-1", got.requests[0])
    expect(got.requests[0].virtual_machines[0].id == VM, got.requests[0])

    # A port the policy does not name: refused with ajar's code and target.
    try:
        jit.initiate(
            RG,
            LOC,
            "default",
            sm.JitNetworkAccessPolicyInitiateRequest(
                virtual_machines=[
                    sm.JitNetworkAccessPolicyInitiateVirtualMachine(id=VM, ports=[port(number=23, end_time_utc=end)])
                ]
            ),
        )
        raise AssertionError("an initiate of a port outside the policy passed")
    except HttpResponseError as e:
        expect(e.status_code == 400, e.status_code)
        expect(e.error.code == "ValidationFailed", e.error.code)
        expect(e.error.target == "virtualMachines[0].ports[0].number", e.error.target)

    # Read, modify, write: what GET answered (its requests included) goes back as it is.
    got.virtual_machines[0].ports[0].max_request_access_duration = "PT1H"
    again = jit.create_or_update(RG, LOC, "default", got)
    expect(again.virtual_machines[0].ports[0].max_request_access_duration == "PT1H", again)

    jit.delete(RG, LOC, "default")
    try:
        jit.get(RG, LOC, "default")
        raise AssertionError("a deleted policy was found")
    except ResourceNotFoundError as e:
        expect(e.status_code == 404, e.status_code)

    # azure-core sends a bearer token only over https.
    plain = SecurityCenter(StaticToken(), SUB, base_url=URL.replace("https://", "http://"))
    try:
        plain.jit_network_access_policies.get(RG, LOC, "default")
        raise AssertionError("a bearer token went over http")
    except ServiceRequestError:
        pass

    base = f"/subscriptions/{SUB}/providers/Microsoft.Security/jitNetworkAccessPolicies"
    status, body = raw("GET", base)
    expect((status, body["error"]["code"]) == (400, "MissingApiVersionParameter"), body)
    status, body = raw("GET", base + "?api-version=1999-01-01")
    expect((status, body["error"]["code"]) == (400, "NoRegisteredProviderFound"), body)
    expect(body["error"]["target"] == "api-version", body)


def jit_requests():
    kw = dict(base_url=URL, connection_verify=CA, retry_total=0, polling_interval=1)
    ma = ManagedApplicationsMgmtClient(StaticToken(), SUB, **kw).jit_requests
    # A start a little ahead, so ajar keeps it as sent (a start already past begins now).
    start = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)).replace(microsecond=0)
    body = am.JitRequestDefinition(
        location=LOC,
        tags={"ticket": "4711"},
        properties=am.JitRequestProperties(
            application_resource_id=APP,
            jit_authorization_policies=[am.JitAuthorizationPolicies(principal_id=ME, role_definition_id=ROLE)],
            jit_scheduling_policy=am.JitSchedulingPolicy(type="Once", duration=dt.timedelta(hours=2), start_time=start),
        ),
    )
    poller = ma.begin_create_or_update(RG, "req1", body)
    q = poller.result()
    expect(poller.status() == "Succeeded" and poller.done(), poller.status())
    expect(q.name == "req1" and q.type == "Microsoft.Solutions/jitRequests", q)
    expect(q.id == f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Solutions/jitRequests/req1", q.id)
    expect(q.location == LOC and q.tags == {"ticket": "4711"}, q)
    p = q.properties
    expect(p.provisioning_state == "Succeeded", p.provisioning_state)
    expect(p.application_resource_id == APP, p.application_resource_id)
    expect(p.jit_scheduling_policy.duration == dt.timedelta(hours=2), p.jit_scheduling_policy.duration)
    expect(p.jit_scheduling_policy.start_time == start, p.jit_scheduling_policy.start_time)
    expect(p.jit_scheduling_policy.type == "Once", p.jit_scheduling_policy.type)
    auth = p.jit_authorization_policies[0]
    expect((auth.principal_id, auth.role_definition_id) == (ME, ROLE), auth)
    expect(p.jit_request_state in ("Approved", "Active"), p.jit_request_state)

    expect(ma.get(RG, "req1").name == "req1", "get")
    expect(ma.get(RG, "nope") is None, "a missing request reads as None")
    expect(ma.update(RG, "req1", am.JitRequestPatchable(tags={"a": "b"})).tags == {"a": "b"}, "update")
    expect(ma.get(RG, "req1").tags == {"a": "b"}, "tags kept")
    expect([x.name for x in ma.list_by_resource_group(RG).value] == ["req1"], "list by resource group")
    expect([x.name for x in ma.list_by_subscription().value] == ["req1"], "list by subscription")

    ma.delete(RG, "req1")
    ended = ma.get(RG, "req1")
    expect(ended.properties.jit_request_state in ("Revoked", "Canceled"), ended.properties.jit_request_state)
    ma.delete(RG, "never-made")


policies()
jit_requests()
print("azure sdk: every operation passed")
