"""Branch aliases: a stable preview host `<alias>--<app>.<domain>` per branch that follows the
newest ready deployment pushed with it, listed, removed, and promoted on merge.

Writes the store, then announces (the edge's routes name each alias's deployment). Never
builds: a push moves its alias once its deployment is ready (roost/control/deploys.py).
"""

from __future__ import annotations

from roost.control.core import Announcer
from roost.errors import UsageError
from roost.model import ALIAS_RULE, Alias, AppName, DeploymentId, alias_max_length, alias_slug, is_valid_alias
from roost.store import Store


def check_alias(app: str, alias: str) -> str:
    """`alias` if it makes a valid preview host of `app`; else UsageError with the slug to use.

    >>> check_alias("shop", "feature-x")
    'feature-x'
    """
    if is_valid_alias(alias, app):
        return alias
    room = alias_max_length(app)
    slug = alias_slug(alias, app)
    rule = f"an alias of '{app}' is 1 to {room} characters: {ALIAS_RULE}"
    if room < 1:
        hint = f"the app name '{app}' leaves no room for an alias in a 63-character host label"
    elif slug and slug != alias:
        hint = f"{rule}; `roost push --alias` turns a branch name into one: '{slug}'"
    else:
        hint = rule
    raise UsageError(f"'{alias}' is not a valid alias of '{app}'", hint=hint)


class AliasUseCases:
    """Pointing, listing and removing an app's branch aliases."""

    def __init__(self, store: Store, announcer: Announcer) -> None:
        self.store = store
        self.announcer = announcer

    async def point(self, app: AppName, alias: str, deployment: DeploymentId) -> Alias:
        """Make `alias` serve `deployment` (ready, of `app`) unless a newer push holds it, and
        tell the edge; the alias as it now is."""
        now = await self.store.aliases.point(app, check_alias(app, alias), deployment)
        if now.deployment != deployment:
            return now
        await self.store.add_event(
            app,
            "alias.moved",
            f"alias {alias} now serves {deployment}",
            {"alias": alias, "deployment": deployment},
        )
        await self.announcer.announce(app)
        return now

    async def aliases(self, app: str) -> list[Alias]:
        """The app's aliases by name; raises NotFound for the app."""
        await self.store.get_app(app)
        return await self.store.aliases.of_app(app)

    async def target(self, app: str, alias: str) -> DeploymentId:
        """The deployment `alias` serves; raises NotFound."""
        await self.store.get_app(app)
        return (await self.store.aliases.get(app, alias)).deployment

    async def remove(self, app: str, alias: str) -> None:
        """Forget `alias` (its host answers 404 from now on); the deployment stays."""
        await self.store.get_app(app)
        await self.store.aliases.remove(app, alias)
        await self.store.add_event(app, "alias.removed", f"alias {alias} removed", {"alias": alias})
        await self.announcer.announce(AppName(app))

    async def held(self, app: str) -> set[DeploymentId]:
        """The deployments some alias of `app` serves: retention keeps them."""
        return {alias.deployment for alias in await self.store.aliases.of_app(app)}
