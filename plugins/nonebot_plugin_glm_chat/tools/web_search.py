"""Web search as a function: the platform's Web Search API (``POST {base}/web_search``).

The platform applies one kind of tool per request, functions before its built-in
``web_search`` tool. With the bot's tools on, searching is offered as a function instead, and
the results it found are listed under the answer as the built-in tool's are.
"""

from __future__ import annotations

from typing import Any

from ..glm.client import GLMClient
from ..glm.errors import GLMError
from .base import Tool, ToolContext, ToolFailed, text_parameter

SEARCH_ENGINE = "search_std"
RESULTS_READ = 5  # results the model reads
CONTENT_CHARS = 300  # of each result's text


def web_search_tool(client: GLMClient) -> Tool:
    async def web_search(arguments: dict[str, Any], context: ToolContext) -> str:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolFailed("web_search needs a query, as text")
        try:
            data = await client.post_json(
                "web_search",
                {"search_query": query.strip()[:200], "search_engine": SEARCH_ENGINE},
                model=SEARCH_ENGINE,
                purpose="search",
                conversation=context.chat,
            )
        except GLMError as error:
            raise ToolFailed(f"the search failed ({type(error).__name__})") from None
        found = data.get("search_result")
        results = [item for item in found if isinstance(item, dict)] if found else []
        if not results:
            return "no results"
        context.sources.extend(results[:RESULTS_READ])
        return "\n\n".join(
            f"[{index}] {item.get('title', '')}\n{item.get('link', '')}\n"
            + str(item.get("content", ""))[:CONTENT_CHARS]
            for index, item in enumerate(results[:RESULTS_READ], start=1)
        )

    return Tool(
        "web_search",
        "Search the web for current information (news, facts that change, anything after the"
        " model's training). Returns titles, links and excerpts.",
        web_search,
        text_parameter("query", "what to search for"),
        timeout=30.0,
    )
