-- Argo CD health check for work.open-cluster-management.io/ManifestWork (fl-gitops).
--
-- One ManifestWork carries one cluster's part of one FL round: a ConfigMap with the
-- round config and a batch/v1 Job that trains. Its health is the round's health on
-- that cluster:
--   Progressing  not applied yet, status from an older generation, feedback from the
--                previous round's Job, or the Job is still running (or retrying)
--   Degraded     the work agent could not apply the manifests, or the Job failed
--   Healthy      the round's Job succeeded
--
-- Status feedback comes from the work agent's WellKnownStatus rule for batch/v1 Jobs
-- (JobComplete: String, the status of the Job's "Complete" condition, which Kubernetes
-- sets only on success; JobSucceeded: Integer, .status.succeeded) and a JSONPaths rule
-- (failed: .status.failed, succeeded: .status.succeeded; optionally JobFailed: the
-- status of the "Failed" condition). Zero counts are omitted by the Job's status, so
-- a missing count means 0. Numbers go through tonumber: Argo CD hands a json.Number
-- to Lua as a string.
--
-- Argo CD runs this with only the base, table and a safe os library loaded (no string
-- or math), under gopher-lua (Lua 5.1): keep it that way.

local hs = {}

local function conditionOf(conditions, condType)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == condType then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.type .. "=" .. tostring(c.status)
  if c.reason ~= nil and c.reason ~= "" then
    text = text .. " (" .. c.reason .. ")"
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

-- "True" (String feedback, or a condition status) or true (Boolean feedback).
local function isTrue(fv)
  if fv == nil then
    return false
  end
  if fv.type == "String" then
    return fv.string == "True"
  end
  if fv.type == "Boolean" then
    return fv.boolean == true
  end
  return false
end

local function integerOf(fv)
  if fv ~= nil and fv.type == "Integer" then
    return tonumber(fv.integer)
  end
  return nil
end

local function done(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local function evaluate()
  local meta = obj.metadata or {}
  local spec = obj.spec or {}
  local status = obj.status

  if status == nil or status.conditions == nil or #status.conditions == 0 then
    return done("Progressing", "Waiting for the work agent to report status")
  end

  -- Conditions written for an older generation say nothing about the current spec
  -- (for example, the previous round before the reconcile job committed this one).
  local generation = tonumber(meta.generation)
  for _, c in ipairs(status.conditions) do
    local observed = tonumber(c.observedGeneration)
    if generation ~= nil and observed ~= nil and observed < generation then
      return done("Progressing", "Status is for generation " .. tostring(observed)
        .. ", waiting for the work agent to observe generation " .. tostring(generation))
    end
  end

  local applied = conditionOf(status.conditions, "Applied")
  if applied ~= nil and applied.status == "False" then
    return done("Degraded", "Manifests not applied: " .. describe(applied))
  end
  local degraded = conditionOf(status.conditions, "Degraded")
  if degraded ~= nil and degraded.status == "True" then
    return done("Degraded", describe(degraded))
  end
  if applied == nil or applied.status ~= "True" then
    return done("Progressing", "Waiting for the manifests to be applied")
  end

  -- The Job of the current round, as written in the spec.
  local job = nil
  local workload = spec.workload or {}
  for _, m in ipairs(workload.manifests or {}) do
    if m.kind == "Job" and m.apiVersion == "batch/v1" then
      job = m
      break
    end
  end

  local available = conditionOf(status.conditions, "Available")
  if job == nil then
    if available ~= nil and available.status == "True" then
      return done("Healthy", "Manifests applied and available")
    end
    return done("Progressing", "Waiting for the manifests to become available")
  end

  local jobMeta = job.metadata or {}
  local jobName = jobMeta.name or ""
  local jobSpec = job.spec or {}

  -- The Job's entry in the resource status; an entry for another Job is the previous
  -- round's, left from before the agent applied this generation.
  local entry = nil
  local staleName = nil
  local resourceStatus = status.resourceStatus or {}
  for _, m in ipairs(resourceStatus.manifests or {}) do
    local rm = m.resourceMeta or {}
    if rm.kind == "Job" and (rm.group == nil or rm.group == "batch") then
      if rm.name == jobName and (rm.namespace == nil or jobMeta.namespace == nil
          or rm.namespace == jobMeta.namespace) then
        entry = m
        break
      end
      staleName = rm.name
    end
  end
  if entry == nil then
    if staleName ~= nil then
      return done("Progressing", "Status feedback is for Job " .. tostring(staleName)
        .. " of an earlier round, waiting for Job " .. jobName)
    end
    return done("Progressing", "Waiting for status feedback from Job " .. jobName)
  end

  local values = {}
  local feedback = entry.statusFeedback or {}
  for _, v in ipairs(feedback.values or {}) do
    if v.name ~= nil then
      values[v.name] = v.fieldValue
    end
  end

  local succeeded = integerOf(values.succeeded) or integerOf(values.JobSucceeded) or 0
  local failed = integerOf(values.failed) or 0
  local completions = tonumber(jobSpec.completions) or 1
  local backoffLimit = tonumber(jobSpec.backoffLimit)
  if backoffLimit == nil then
    backoffLimit = 6 -- the Kubernetes default
  end

  if isTrue(values.JobFailed) then
    return done("Degraded", "Job " .. jobName .. " failed (" .. tostring(failed)
      .. " failed pods)")
  end
  if isTrue(values.JobComplete) or succeeded >= completions then
    return done("Healthy", "Job " .. jobName .. " succeeded")
  end
  if failed > backoffLimit then
    return done("Degraded", "Job " .. jobName .. " failed: " .. tostring(failed)
      .. " failed pods, backoffLimit " .. tostring(backoffLimit))
  end
  -- A conditionRules WellKnownConditions rule marks the Job "Complete" once it has
  -- finished either way; finished without success is a failure.
  local complete = conditionOf(entry.conditions, "Complete")
  if complete ~= nil and complete.status == "True" then
    return done("Degraded", "Job " .. jobName .. " finished without succeeding")
  end
  if failed > 0 then
    return done("Progressing", "Job " .. jobName .. " is retrying: " .. tostring(failed)
      .. " failed pods, backoffLimit " .. tostring(backoffLimit))
  end
  return done("Progressing", "Job " .. jobName .. " is running")
end

return evaluate()
