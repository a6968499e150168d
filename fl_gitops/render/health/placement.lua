-- Argo CD health check for cluster.open-cluster-management.io/Placement (fl-gitops).
--
-- The placement controller reports a "PlacementSatisfied" condition and the number of
-- selected clusters; the reconcile job reads the decisions it writes. Health:
--   Progressing  the controller has not reported on the current generation yet
--   Healthy      PlacementSatisfied is True
--   Degraded     PlacementSatisfied is False (no ManagedClusterSetBinding in the
--                namespace, no bound set in spec.clusterSets, empty sets, no cluster
--                matched, or fewer clusters than numberOfClusters)
--
-- Argo CD runs this with only the base, table and a safe os library loaded (no string
-- or math), under gopher-lua (Lua 5.1): keep it that way.

local hs = {}

local function evaluate()
  local meta = obj.metadata or {}
  local status = obj.status or {}
  local selected = tonumber(status.numberOfSelectedClusters) or 0
  local count = tostring(selected) .. " clusters selected"

  local satisfied = nil
  for _, c in ipairs(status.conditions or {}) do
    if c.type == "PlacementSatisfied" then
      satisfied = c
    end
  end
  if satisfied == nil then
    hs.status = "Progressing"
    hs.message = "Waiting for the placement controller to schedule (" .. count .. ")"
    return hs
  end
  local generation = tonumber(meta.generation)
  local observed = tonumber(satisfied.observedGeneration)
  if generation ~= nil and observed ~= nil and observed < generation then
    hs.status = "Progressing"
    hs.message = "Waiting for the placement controller to observe generation "
      .. tostring(generation) .. " (" .. count .. ")"
    return hs
  end

  local detail = ""
  if satisfied.reason ~= nil and satisfied.reason ~= "" then
    detail = detail .. " (" .. satisfied.reason .. ")"
  end
  if satisfied.message ~= nil and satisfied.message ~= "" then
    detail = detail .. ": " .. satisfied.message
  end

  if satisfied.status == "True" then
    hs.status = "Healthy"
    hs.message = count .. detail
  elseif satisfied.status == "False" then
    hs.status = "Degraded"
    hs.message = "Placement not satisfied, " .. count .. detail
  else
    hs.status = "Progressing"
    hs.message = "Placement satisfaction unknown, " .. count .. detail
  end
  return hs
end

return evaluate()
