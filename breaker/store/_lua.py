"""Lua shared by the store's scripts."""

from __future__ import annotations


def repair_types(*types: str) -> str:
    """Delete KEYS[i] when it exists with another type than types[i]; sets `repaired`.

    A foreign `SET breaker:{x} 1` then costs that breaker one rewrite, not an error
    that fails it forever.
    """
    wanted = ", ".join(f"'{t}'" for t in types)
    return f"""local repaired = 0
for k, want in ipairs({{{wanted}}}) do
  local ty = redis.call('TYPE', KEYS[k]).ok
  if ty ~= 'none' and ty ~= want then
    redis.call('DEL', KEYS[k])
    repaired = 1
  end
end
"""
