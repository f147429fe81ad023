"""The trigger form of the Airflow 2.11 UI shows every option with its title and description.

(The Airflow 3.3 form is driven in a real browser in test_user_path.py.)
"""

from __future__ import annotations

import html
import re

import pytest

from starship_dags.dags import migration_params


@pytest.mark.parametrize("target", ["2.11"], indirect=True)
def test_airflow2_trigger_form_shows_every_param(target):
    page = target.client().session.get(f"{target.url}/dags/starship_migration/trigger", timeout=60)
    assert page.status_code == 200, page.status_code
    text = html.unescape(page.text)
    for name, param in migration_params().items():
        title = param.schema["title"]
        assert re.search(rf">\s*{re.escape(title)}\s*(:\s*)?<", text), f"no field titled {title!r} for {name}"
        assert param.description in text, f"no description for {name}"
        assert f'name="element_{name}"' in text or f'id="element_{name}"' in text, f"no input for {name}"
    assert "Starship migration" in text  # the doc_md set-up text is on the page
