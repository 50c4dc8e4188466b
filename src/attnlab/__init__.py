"""attnlab: the Transformer family from scratch — readable, fast, and checked against references."""

from attnlab.core.attention import attention
from attnlab.models.config import from_name

__version__ = "0.1.0"
__all__ = ["attention", "from_name", "__version__"]
