"""Bedrock Agents offline: agents, action groups, aliases and versions, and InvokeAgent.

moto 5.2.5 records an agent (CreateAgent, GetAgent, ListAgents, DeleteAgent) but with an id
AWS would not make, ``PREPARED`` at once and version ``1.0``, and has no action groups,
PrepareAgent, aliases, versions or knowledge-base associations, and no
``bedrock-agent-runtime`` at all. This module keeps agents itself, as AWS does:

* CreateAgent answers ``CREATING`` and the agent is ``NOT_PREPARED`` afterwards; its working
  version is ``DRAFT``. Action groups (function schema or OpenAPI schema) and knowledge bases
  are attached to ``DRAFT``; PrepareAgent checks the agent (a foundation model Bedrock can
  run with Converse and tools, an instruction of at least 40 characters, a service role) and
  makes it ``PREPARED``.
* CreateAgentAlias without a routing configuration freezes ``DRAFT`` into the next numbered
  version and points the alias at it; the built-in test alias ``TSTALIASID`` always runs
  ``DRAFT``.
* InvokeAgent runs the orchestration loop once per call, with the deterministic stand-in of
  :mod:`labkit.bedrock.tools` (or the local model of :mod:`labkit.bedrock.generation`) as the
  agent's model: the enabled functions of its action groups are its tools.
  - A function of an action group with ``customControl: RETURN_CONTROL`` is not run by the
    agent: the stream ends with a ``returnControl`` event (``invocationId`` and the
    ``functionInvocationInput`` with the parameters the model chose); your code runs the
    function and calls InvokeAgent again with ``sessionState.returnControlInvocationResults``
    and that ``invocationId``; the agent then answers from the result. This is the path that
    runs offline, and it is the same code on AWS.
  - Action groups whose executor is a Lambda function are refused at InvokeAgent: the offline
    backend does not run Lambda functions (use RETURN_CONTROL here, or the sandbox backend).
  - When no function fits and the agent has knowledge bases, it searches them and answers
    from the chunks found, with citations in the chunk's ``attribution``.
  - The answer is one ``chunk`` event (``bytes``); with ``enableTrace`` each step is also a
    ``trace`` event (``orchestrationTrace``: model input and output, rationale, the action
    group or knowledge-base invocation, the observation and the final response).
  Sessions keep the conversation for ``idleSessionTTLInSeconds``; ``endSession`` ends one.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import catalog, responder
from .chat import Block, ChatRequest, Message, ToolResult, ToolSpec
from .errors import BedrockError, not_found, validation

TEST_ALIAS = "TSTALIASID"
MIN_INSTRUCTION = 40
_KINDS = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean", "array": "array"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))


def conflict(message: str) -> BedrockError:
    return BedrockError("ConflictException", message, 409)


@dataclass
class ActionGroup:
    record: dict[str, Any]

    @property
    def name(self) -> str:
        return self.record["actionGroupName"]

    @property
    def enabled(self) -> bool:
        return self.record.get("actionGroupState", "ENABLED") == "ENABLED"

    def functions(self) -> list[dict[str, Any]]:
        return list((self.record.get("functionSchema") or {}).get("functions") or [])

    def tools(self) -> list[tuple[ToolSpec, dict[str, Any]]]:
        """(tool spec, function) for each function; the tool is named ``<group>__<function>``."""
        out = []
        for fn in self.functions():
            props, required = {}, []
            for pname, p in (fn.get("parameters") or {}).items():
                props[pname] = {"type": _KINDS.get(p.get("type", "string"), "string"),
                                "description": p.get("description", "")}
                if props[pname]["type"] == "array":
                    props[pname]["items"] = {"type": "string"}
                if p.get("required"):
                    required.append(pname)
            schema = {"type": "object", "properties": props, "required": required}
            out.append((ToolSpec(f"{self.name}__{fn['name']}", fn.get("description", ""), schema), fn))
        return out


@dataclass
class Version:
    """DRAFT or a numbered version: the agent's settings and what is attached to it."""

    agent: dict[str, Any]
    groups: dict[str, ActionGroup] = field(default_factory=dict)
    knowledge_bases: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Session:
    history: list[Message] = field(default_factory=list)
    pending: dict[str, Any] | None = None  # the returnControl the caller must answer
    attributes: dict[str, str] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class AgentRecord:
    versions: dict[str, Version]
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_version: int = 1
    sessions: dict[tuple[str, str], Session] = field(default_factory=dict)

    @property
    def draft(self) -> Version:
        return self.versions["DRAFT"]


class Agents:
    def __init__(self, account_id: str, region: str, runtime: Any, knowledge_bases: Any):
        self.account_id = account_id
        self.region = region
        self.runtime = runtime
        self.kb = knowledge_bases
        self.agents: dict[str, AgentRecord] = {}

    # --- agents -----------------------------------------------------------------------------
    def _agent(self, agent_id: str) -> AgentRecord:
        rec = self.agents.get(agent_id)
        if rec is None:
            raise not_found(f"Agent with id {agent_id} does not exist.")
        return rec

    def _version(self, agent_id: str, version: str) -> Version:
        rec = self._agent(agent_id)
        if version not in rec.versions:
            raise not_found(f"Agent version {version} of agent {agent_id} does not exist.")
        return rec.versions[version]

    def _editable(self, agent_id: str, version: str) -> Version:
        if version != "DRAFT":
            raise validation("Only the DRAFT version of an agent can be changed.")
        return self._version(agent_id, version)

    def create_agent(self, p: dict[str, Any]) -> dict[str, Any]:
        if any(r.draft.agent["agentName"] == p["agentName"] for r in self.agents.values()):
            raise conflict(f"Agent with name {p['agentName']} already exists.")
        now = _now()
        agent_id = _id()
        record = {"agentId": agent_id, "agentName": p["agentName"],
                  "agentArn": f"arn:aws:bedrock:{self.region}:{self.account_id}:agent/{agent_id}",
                  "agentVersion": "DRAFT", "agentStatus": "NOT_PREPARED", "orchestrationType": "DEFAULT",
                  "idleSessionTTLInSeconds": p.get("idleSessionTTLInSeconds", 600),
                  "agentResourceRoleArn": p.get("agentResourceRoleArn", ""), "createdAt": now, "updatedAt": now}
        for key in ("instruction", "foundationModel", "description", "clientToken", "customerEncryptionKeyArn",
                    "promptOverrideConfiguration", "guardrailConfiguration", "memoryConfiguration",
                    "agentCollaboration"):
            if p.get(key) is not None:
                record[key] = p[key]
        self.agents[agent_id] = AgentRecord({"DRAFT": Version(record)})
        return {"agent": {**record, "agentStatus": "CREATING"}, "_status": 202}

    def get_agent(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"agent": self._agent(p["agentId"]).draft.agent}

    def list_agents(self, p: dict[str, Any]) -> dict[str, Any]:
        out = []
        for rec in self.agents.values():
            a = rec.draft.agent
            summary: dict[str, Any] = {k: a[k] for k in ("agentId", "agentName", "agentStatus", "description", "updatedAt") if k in a}
            numbered = [v for v in rec.versions if v != "DRAFT"]
            summary["latestAgentVersion"] = max(numbered, key=int) if numbered else "DRAFT"
            out.append(summary)
        return {"agentSummaries": out}

    def update_agent(self, p: dict[str, Any]) -> dict[str, Any]:
        draft = self._agent(p["agentId"]).draft
        for key, value in p.items():
            if key != "agentId" and value is not None:
                draft.agent[key] = value
        draft.agent.update(agentStatus="NOT_PREPARED", updatedAt=_now())
        return {"agent": {**draft.agent, "agentStatus": "UPDATING"}, "_status": 202}

    def delete_agent(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._agent(p["agentId"])
        if [a for a in rec.aliases if a != TEST_ALIAS] and not p.get("skipResourceInUseCheck"):
            raise conflict(f"Agent {p['agentId']} has aliases. Delete them first, or set skipResourceInUseCheck.")
        del self.agents[p["agentId"]]
        return {"agentId": p["agentId"], "agentStatus": "DELETING", "_status": 202}

    def prepare_agent(self, p: dict[str, Any]) -> dict[str, Any]:
        draft = self._agent(p["agentId"]).draft
        a = draft.agent
        problems = []
        if not a.get("foundationModel"):
            problems.append("the agent has no foundationModel")
        else:
            try:
                model = self.runtime.resolve(a["foundationModel"])
                if model.converse is None or not model.converse.tool_use:
                    problems.append(f"the model {a['foundationModel']} cannot orchestrate an agent (it has no tool use)")
            except BedrockError as err:
                problems.append(f"foundationModel {a['foundationModel']}: {err.message}")
        if len(a.get("instruction") or "") < MIN_INSTRUCTION:
            problems.append(f"the instruction must have at least {MIN_INSTRUCTION} characters")
        if not a.get("agentResourceRoleArn"):
            problems.append("the agent has no agentResourceRoleArn (the service role Bedrock assumes)")
        if problems:
            raise validation(f"Failed to prepare agent {a['agentId']}: {'; '.join(problems)}.")
        a.update(agentStatus="PREPARED", preparedAt=_now(), updatedAt=_now())
        return {"agentId": a["agentId"], "agentStatus": "PREPARING", "agentVersion": "DRAFT",
                "preparedAt": a["preparedAt"], "_status": 202}

    def list_agent_versions(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._agent(p["agentId"])
        out = []
        for name, v in rec.versions.items():
            a = v.agent
            out.append({"agentName": a["agentName"], "agentStatus": a["agentStatus"], "agentVersion": name,
                        "createdAt": a["createdAt"], "updatedAt": a["updatedAt"],
                        **({"description": a["description"]} if a.get("description") else {})})
        return {"agentVersionSummaries": out}

    def get_agent_version(self, p: dict[str, Any]) -> dict[str, Any]:
        a = self._version(p["agentId"], p["agentVersion"]).agent
        out = {k: v for k, v in a.items() if k not in ("agentVersion", "clientToken", "orchestrationType")}
        return {"agentVersion": {**out, "version": p["agentVersion"]}}

    def delete_agent_version(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._agent(p["agentId"])
        if p["agentVersion"] == "DRAFT":
            raise validation("The DRAFT version cannot be deleted; delete the agent.")
        self._version(p["agentId"], p["agentVersion"])
        used = [a["agentAliasName"] for a in rec.aliases.values()
                if any(r.get("agentVersion") == p["agentVersion"] for r in a["routingConfiguration"])]
        if used and not p.get("skipResourceInUseCheck"):
            raise conflict(f"Version {p['agentVersion']} is used by aliases {', '.join(used)}.")
        del rec.versions[p["agentVersion"]]
        return {"agentId": p["agentId"], "agentVersion": p["agentVersion"], "agentStatus": "DELETING", "_status": 202}

    # --- action groups --------------------------------------------------------------------------
    def _check_group(self, p: dict[str, Any]) -> None:
        parent = p.get("parentActionGroupSignature")
        if parent:
            if p.get("functionSchema") or p.get("apiSchema") or p.get("actionGroupExecutor"):
                raise validation(f"An action group with parentActionGroupSignature {parent} takes no schema and no "
                                 "executor.")
            return
        if bool(p.get("functionSchema")) == bool(p.get("apiSchema")):
            raise validation("An action group needs exactly one of functionSchema and apiSchema.")
        if not p.get("actionGroupExecutor"):
            raise validation("An action group needs an actionGroupExecutor: a Lambda function ARN, or "
                             "customControl RETURN_CONTROL.")
        names = set()
        for fn in (p.get("functionSchema") or {}).get("functions") or []:
            if fn["name"] in names:
                raise validation(f"The function name {fn['name']} is used twice in the action group.")
            names.add(fn["name"])

    def create_action_group(self, p: dict[str, Any]) -> dict[str, Any]:
        version = self._editable(p["agentId"], p["agentVersion"])
        if any(g.name == p["actionGroupName"] for g in version.groups.values()):
            raise conflict(f"Action group with name {p['actionGroupName']} already exists.")
        self._check_group(p)
        now = _now()
        record = {"agentId": p["agentId"], "agentVersion": p["agentVersion"], "actionGroupId": _id(),
                  "actionGroupName": p["actionGroupName"], "actionGroupState": p.get("actionGroupState", "ENABLED"),
                  "createdAt": now, "updatedAt": now}
        for key in ("description", "clientToken", "actionGroupExecutor", "apiSchema", "functionSchema",
                    "parentActionGroupSignatureParams"):
            if p.get(key) is not None:
                record[key] = p[key]
        if p.get("parentActionGroupSignature"):
            record["parentActionSignature"] = p["parentActionGroupSignature"]
        version.groups[record["actionGroupId"]] = ActionGroup(record)
        version.agent.update(agentStatus="NOT_PREPARED", updatedAt=now)
        return {"agentActionGroup": record}

    def _group(self, p: dict[str, Any]) -> tuple[Version, ActionGroup]:
        version = self._version(p["agentId"], p["agentVersion"])
        group = version.groups.get(p["actionGroupId"])
        if group is None:
            raise not_found(f"Action group with id {p['actionGroupId']} does not exist.")
        return version, group

    def get_action_group(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"agentActionGroup": self._group(p)[1].record}

    def list_action_groups(self, p: dict[str, Any]) -> dict[str, Any]:
        version = self._version(p["agentId"], p["agentVersion"])
        keys = ("actionGroupId", "actionGroupName", "actionGroupState", "description", "updatedAt")
        return {"actionGroupSummaries": [{k: g.record[k] for k in keys if k in g.record}
                                         for g in version.groups.values()]}

    def update_action_group(self, p: dict[str, Any]) -> dict[str, Any]:
        self._editable(p["agentId"], p["agentVersion"])
        version, group = self._group(p)
        self._check_group(p)
        for key, value in p.items():
            if key not in ("agentId", "agentVersion", "actionGroupId") and value is not None:
                group.record[key] = value
        group.record["updatedAt"] = _now()
        version.agent.update(agentStatus="NOT_PREPARED", updatedAt=_now())
        return {"agentActionGroup": group.record}

    def delete_action_group(self, p: dict[str, Any]) -> dict[str, Any]:
        self._editable(p["agentId"], p["agentVersion"])
        version, group = self._group(p)
        if group.enabled and not p.get("skipResourceInUseCheck"):
            raise validation("Disable the action group (actionGroupState DISABLED) before deleting it, or set "
                             "skipResourceInUseCheck.")
        del version.groups[p["actionGroupId"]]
        version.agent.update(agentStatus="NOT_PREPARED", updatedAt=_now())
        return {}

    # --- knowledge bases ------------------------------------------------------------------------
    def associate_knowledge_base(self, p: dict[str, Any]) -> dict[str, Any]:
        version = self._editable(p["agentId"], p["agentVersion"])
        self.kb.knowledge_base(p["knowledgeBaseId"])
        now = _now()
        record = {"agentId": p["agentId"], "agentVersion": p["agentVersion"], "knowledgeBaseId": p["knowledgeBaseId"],
                  "description": p["description"], "knowledgeBaseState": p.get("knowledgeBaseState", "ENABLED"),
                  "createdAt": now, "updatedAt": now}
        version.knowledge_bases[p["knowledgeBaseId"]] = record
        version.agent.update(agentStatus="NOT_PREPARED", updatedAt=now)
        return {"agentKnowledgeBase": record}

    def get_knowledge_base(self, p: dict[str, Any]) -> dict[str, Any]:
        version = self._version(p["agentId"], p["agentVersion"])
        if p["knowledgeBaseId"] not in version.knowledge_bases:
            raise not_found(f"Knowledge base {p['knowledgeBaseId']} is not associated with the agent.")
        return {"agentKnowledgeBase": version.knowledge_bases[p["knowledgeBaseId"]]}

    def list_knowledge_bases(self, p: dict[str, Any]) -> dict[str, Any]:
        version = self._version(p["agentId"], p["agentVersion"])
        keys = ("knowledgeBaseId", "description", "knowledgeBaseState", "updatedAt")
        return {"agentKnowledgeBaseSummaries": [{k: r[k] for k in keys} for r in version.knowledge_bases.values()]}

    def disassociate_knowledge_base(self, p: dict[str, Any]) -> dict[str, Any]:
        version = self._editable(p["agentId"], p["agentVersion"])
        if version.knowledge_bases.pop(p["knowledgeBaseId"], None) is None:
            raise not_found(f"Knowledge base {p['knowledgeBaseId']} is not associated with the agent.")
        return {}

    # --- aliases -------------------------------------------------------------------------------
    def _freeze(self, rec: AgentRecord) -> str:
        draft = rec.draft
        if draft.agent["agentStatus"] != "PREPARED":
            raise validation(f"Agent {draft.agent['agentId']} is not prepared: call PrepareAgent before creating an "
                             "alias.")
        name = str(rec.next_version)
        rec.next_version += 1
        now = _now()
        agent = json.loads(json.dumps(draft.agent, default=str))
        agent.update(agentVersion=name, createdAt=now, updatedAt=now, agentStatus="PREPARED",
                     preparedAt=draft.agent.get("preparedAt"))
        groups = {gid: ActionGroup({**g.record, "agentVersion": name}) for gid, g in draft.groups.items()}
        kbs = {k: {**r, "agentVersion": name} for k, r in draft.knowledge_bases.items()}
        rec.versions[name] = Version(agent, groups, kbs)
        return name

    def _alias_record(self, rec: AgentRecord, agent_id: str, alias_id: str) -> dict[str, Any]:
        if alias_id == TEST_ALIAS:
            now = rec.draft.agent["createdAt"]
            return {"agentId": agent_id, "agentAliasId": TEST_ALIAS, "agentAliasName": "AgentTestAlias",
                    "agentAliasArn": f"arn:aws:bedrock:{self.region}:{self.account_id}:agent-alias/{agent_id}/"
                                     f"{TEST_ALIAS}",
                    "description": "Test Alias for Agent", "routingConfiguration": [{"agentVersion": "DRAFT"}],
                    "createdAt": now, "updatedAt": now, "agentAliasStatus": "PREPARED",
                    "aliasInvocationState": "ACCEPT_INVOCATIONS"}
        alias = rec.aliases.get(alias_id)
        if alias is None:
            raise not_found(f"Agent alias {alias_id} of agent {agent_id} does not exist.")
        return alias

    def create_alias(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._agent(p["agentId"])
        if any(a["agentAliasName"] == p["agentAliasName"] for a in rec.aliases.values()):
            raise conflict(f"Agent alias with name {p['agentAliasName']} already exists.")
        routing = p.get("routingConfiguration")
        if routing:
            for r in routing:
                if r.get("agentVersion") not in rec.versions or r.get("agentVersion") == "DRAFT":
                    raise validation(f"Agent version {r.get('agentVersion')} does not exist or is DRAFT (an alias "
                                     "points to a numbered version).")
        else:
            routing = [{"agentVersion": self._freeze(rec)}]
        now = _now()
        alias_id = _id()
        alias = {"agentId": p["agentId"], "agentAliasId": alias_id, "agentAliasName": p["agentAliasName"],
                 "agentAliasArn": f"arn:aws:bedrock:{self.region}:{self.account_id}:agent-alias/{p['agentId']}/"
                                  f"{alias_id}",
                 "routingConfiguration": routing, "createdAt": now, "updatedAt": now, "agentAliasStatus": "PREPARED",
                 "agentAliasHistoryEvents": [{"routingConfiguration": routing, "startDate": now}],
                 "aliasInvocationState": "ACCEPT_INVOCATIONS"}
        for key in ("description", "clientToken"):
            if p.get(key):
                alias[key] = p[key]
        rec.aliases[alias_id] = alias
        return {"agentAlias": {**alias, "agentAliasStatus": "CREATING"}, "_status": 202}

    def get_alias(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._agent(p["agentId"])
        return {"agentAlias": self._alias_record(rec, p["agentId"], p["agentAliasId"])}

    def list_aliases(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._agent(p["agentId"])
        keys = ("agentAliasId", "agentAliasName", "description", "routingConfiguration", "agentAliasStatus",
                "createdAt", "updatedAt", "aliasInvocationState")
        aliases = [self._alias_record(rec, p["agentId"], TEST_ALIAS), *rec.aliases.values()]
        return {"agentAliasSummaries": [{k: a[k] for k in keys if k in a} for a in aliases]}

    def update_alias(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._agent(p["agentId"])
        alias = self._alias_record(rec, p["agentId"], p["agentAliasId"])
        if p["agentAliasId"] == TEST_ALIAS:
            raise validation("The test alias cannot be changed.")
        routing = p.get("routingConfiguration") or [{"agentVersion": self._freeze(rec)}]
        now = _now()
        alias.update(agentAliasName=p["agentAliasName"], routingConfiguration=routing, updatedAt=now)
        alias["agentAliasHistoryEvents"][-1]["endDate"] = now
        alias["agentAliasHistoryEvents"].append({"routingConfiguration": routing, "startDate": now})
        if p.get("description"):
            alias["description"] = p["description"]
        return {"agentAlias": {**alias, "agentAliasStatus": "UPDATING"}, "_status": 202}

    def delete_alias(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._agent(p["agentId"])
        if p["agentAliasId"] == TEST_ALIAS:
            raise validation("The test alias cannot be deleted.")
        self._alias_record(rec, p["agentId"], p["agentAliasId"])
        del rec.aliases[p["agentAliasId"]]
        return {"agentId": p["agentId"], "agentAliasId": p["agentAliasId"], "agentAliasStatus": "DELETING",
                "_status": 202}

    # --- InvokeAgent -----------------------------------------------------------------------------
    def invoke(self, p: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], str]:
        """(the response stream's events, as (event name, payload), the session id)."""
        rec = self._agent(p["agentId"])
        alias = self._alias_record(rec, p["agentId"], p["agentAliasId"])
        version_name = alias["routingConfiguration"][0]["agentVersion"]
        version = rec.versions.get(version_name)
        if version is None or version.agent["agentStatus"] != "PREPARED":
            raise validation(f"Agent {p['agentId']} version {version_name} is not prepared: call PrepareAgent.")
        agent = version.agent
        key = (p["agentAliasId"], p["sessionId"])
        session = rec.sessions.get(key)
        ttl = agent.get("idleSessionTTLInSeconds", 600)
        if session is None or time.monotonic() - session.last_used > ttl:
            session = rec.sessions[key] = Session()
        session.last_used = time.monotonic()
        state = p.get("sessionState") or {}
        session.attributes.update(state.get("sessionAttributes") or {})
        tools = self._tools(version)
        if any(g.enabled and g.record.get("apiSchema") for g in version.groups.values()):
            raise validation("Action groups defined by an OpenAPI schema (apiSchema) are not emulated offline: define "
                             "the action group with a functionSchema, or use the sandbox backend.")
        results = state.get("returnControlInvocationResults")
        if results:
            turn = self._results_turn(session, state, results, version)
        else:
            if session.pending is not None:
                session.history = session.history[:-1]  # an unanswered call is dropped by a new question
                session.pending = None
            text = p.get("inputText")
            if not text:
                raise validation("inputText is required unless sessionState carries returnControlInvocationResults.")
            turn = Message("user", [text])
        trace_on = bool(p.get("enableTrace"))
        events: list[tuple[str, dict[str, Any]]] = []
        base = {"agentId": p["agentId"], "agentAliasId": p["agentAliasId"], "sessionId": p["sessionId"],
                "agentVersion": version_name}
        request = ChatRequest(system=[agent.get("instruction", "")], messages=[*session.history, turn],
                              max_tokens=2048, tools=[spec for _, _, spec in tools.values()])
        model = self.runtime.resolve(agent["foundationModel"])
        trace_id = f"{uuid.uuid4()}-0"
        result = self.runtime.generate(model, request, "InvokeAgent", None)
        gen = result.gen
        if trace_on:
            events.append(("trace", {**base, "trace": {"orchestrationTrace": {"modelInvocationInput": {
                "traceId": trace_id, "type": "ORCHESTRATION", "foundationModel": model.model_id,
                "text": json.dumps({"system": request.system, "messages": [m.text() for m in request.messages],
                                    "tools": [t.name for t in request.tools]}),
                "inferenceConfiguration": {"maximumLength": request.max_tokens}}}}}))
            events.append(("trace", {**base, "trace": {"orchestrationTrace": {"modelInvocationOutput": {
                "traceId": trace_id, "rawResponse": {"content": gen.text or json.dumps(
                    [{"name": u.name, "input": u.input} for u in gen.tool_uses])},
                "metadata": {"usage": {"inputTokens": gen.input_tokens, "outputTokens": gen.output_tokens}}}}}}))
        session.history.append(turn)
        calls = gen.tool_uses
        if calls:
            call = calls[0]
            group, fn, _ = tools[call.name]
            executor = group.record.get("actionGroupExecutor") or {}
            if executor.get("customControl") != "RETURN_CONTROL":
                session.history.pop()
                raise BedrockError("DependencyFailedException", f"The action group {group.name} runs a Lambda "
                                   "function, which the offline backend does not run. Use actionGroupExecutor "
                                   "{'customControl': 'RETURN_CONTROL'} (your code runs the function) or the "
                                   "sandbox backend.", 424)
            invocation_id = str(uuid.uuid4())
            params = [{"name": k, "type": (fn.get("parameters") or {}).get(k, {}).get("type", "string"),
                       "value": v if isinstance(v, str) else json.dumps(v)} for k, v in call.input.items()]
            session.history.append(Message("assistant", [call]))
            session.pending = {"invocationId": invocation_id, "toolUseId": call.tool_use_id,
                               "actionGroup": group.name, "function": fn["name"]}
            if trace_on:
                events.append(("trace", {**base, "trace": {"orchestrationTrace": {
                    "rationale": {"traceId": trace_id, "text": f"The question fits the function {fn['name']} of the "
                                                               f"action group {group.name}."}}}}))
                events.append(("trace", {**base, "trace": {"orchestrationTrace": {"invocationInput": {
                    "traceId": trace_id, "invocationType": "ACTION_GROUP", "actionGroupInvocationInput": {
                        "actionGroupName": group.name, "function": fn["name"], "parameters": params,
                        "executionType": "RETURN_CONTROL", "invocationId": invocation_id}}}}}))
            events.append(("returnControl", {"invocationId": invocation_id, "invocationInputs": [
                {"functionInvocationInput": {"actionGroup": group.name, "function": fn["name"],
                                             "parameters": params, "actionInvocationType": "RESULT",
                                             "agentId": p["agentId"]}}]}))
            return events, p["sessionId"]
        answer, attribution = gen.text, None
        answered_by_tools = any(isinstance(b, ToolResult) for b in turn.content)
        if not answered_by_tools and not gen.found and version.knowledge_bases:
            answer, attribution, kb_events = self._from_knowledge_bases(version, request, model, base, trace_id,
                                                                        trace_on)
            events += kb_events
        session.history.append(Message("assistant", [answer]))
        if trace_on:
            events.append(("trace", {**base, "trace": {"orchestrationTrace": {"observation": {
                "traceId": trace_id, "type": "FINISH", "finalResponse": {"text": answer}}}}}))
        chunk: dict[str, Any] = {"bytes": answer.encode()}
        if attribution:
            chunk["attribution"] = attribution
        events.append(("chunk", chunk))
        if p.get("endSession"):
            rec.sessions.pop(key, None)
        return events, p["sessionId"]

    @staticmethod
    def _tools(version: Version) -> dict[str, tuple[ActionGroup, dict[str, Any], ToolSpec]]:
        """The model's tools: each enabled function, named as the function (``group__function`` if not unique)."""
        listed = [(g, fn, spec) for g in version.groups.values() if g.enabled for spec, fn in g.tools()]
        counts: dict[str, int] = {}
        for _, fn, _ in listed:
            counts[fn["name"]] = counts.get(fn["name"], 0) + 1
        out = {}
        for group, fn, spec in listed:
            if counts[fn["name"]] == 1:
                spec = ToolSpec(fn["name"], spec.description, spec.schema)
            out[spec.name] = (group, fn, spec)
        return out

    def _results_turn(self, session: Session, state: dict[str, Any], results: list[dict[str, Any]],
                      version: Version) -> Message:
        pending = session.pending
        if pending is None:
            raise validation("There is no pending action to return results for in this session.")
        if state.get("invocationId") != pending["invocationId"]:
            raise validation(f"The invocationId {state.get('invocationId')} does not match the pending invocation "
                             f"{pending['invocationId']}.")
        blocks: list[Block] = []
        for r in results:
            fr = r.get("functionResult")
            if fr is None:
                raise validation("This offline agent returns control for functions: send functionResult results.")
            if fr.get("actionGroup") != pending["actionGroup"] or fr.get("function", pending["function"]) != \
                    pending["function"]:
                raise validation(f"The result is for {fr.get('actionGroup')}/{fr.get('function')}, but the agent "
                                 f"asked for {pending['actionGroup']}/{pending['function']}.")
            body = fr.get("responseBody") or {}
            text = "\n".join(str((c or {}).get("body", "")) for c in body.values())
            status = "error" if fr.get("responseState") == "FAILURE" else "success"
            blocks.append(ToolResult(pending["toolUseId"], [{"text": text}], status))
        session.pending = None
        return Message("user", blocks)

    def _from_knowledge_bases(self, version: Version, request: ChatRequest, model: catalog.FoundationModel,
                              base: dict[str, Any], trace_id: str, trace_on: bool):
        from . import tools as tool_policy

        question = tool_policy.question_of(request)
        events: list[tuple[str, dict[str, Any]]] = []
        hits = []
        for kb_id, rec in version.knowledge_bases.items():
            if rec.get("knowledgeBaseState", "ENABLED") != "ENABLED":
                continue
            if trace_on:
                events.append(("trace", {**base, "trace": {"orchestrationTrace": {"invocationInput": {
                    "traceId": trace_id, "invocationType": "KNOWLEDGE_BASE",
                    "knowledgeBaseLookupInput": {"knowledgeBaseId": kb_id, "text": question}}}}}))
            found = self.kb.search(kb_id, question, {"vectorSearchConfiguration": {"numberOfResults": 5}})
            hits += found
            if trace_on:
                events.append(("trace", {**base, "trace": {"orchestrationTrace": {"observation": {
                    "traceId": trace_id, "type": "KNOWLEDGE_BASE", "knowledgeBaseLookupOutput": {
                        "retrievedReferences": [{"content": h["content"], "location": h["location"],
                                                 "metadata": h["metadata"]} for h in found]}}}}}))
        rag = ChatRequest(system=[*request.system, *(h["content"]["text"] for h in hits)],
                          messages=[Message("user", [question])], max_tokens=request.max_tokens)
        result = self.runtime.generate(model, rag, "InvokeAgent", None)
        text = result.gen.text
        citations = []
        for sentence in result.gen.sources:
            refs = [{"content": h["content"], "location": h["location"], "metadata": h["metadata"]}
                    for h in hits if responder.quoted_from(sentence, h["content"]["text"])]
            pos = text.find(sentence)
            if refs and pos >= 0:
                citations.append({"generatedResponsePart": {"textResponsePart": {
                    "text": sentence, "span": {"start": pos, "end": pos + len(sentence) - 1}}},
                    "retrievedReferences": refs})
        return text, ({"citations": citations} if citations else None), events

