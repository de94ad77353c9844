"""Imports every domain's models so that Base.metadata is complete (Alembic and tests use it)."""

from kennel.annotations import models as _annotations  # noqa: F401
from kennel.annotations import owner_models as _owner_models  # noqa: F401
from kennel.annotations import review_models as _review  # noqa: F401
from kennel.datasets import import_models as _imports  # noqa: F401
from kennel.datasets import models as _datasets  # noqa: F401
from kennel.datasets import workspace_models as _workspace  # noqa: F401
from kennel.db.base import Base
from kennel.experiments import models as _experiments  # noqa: F401
from kennel.keys import models as _keys  # noqa: F401
from kennel.people import models as _people  # noqa: F401
from kennel.projects import models as _projects  # noqa: F401
from kennel.spans import models as _spans  # noqa: F401

metadata = Base.metadata
