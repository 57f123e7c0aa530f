"""The bootstrap model's card as a page (from the card shipped with the weights)."""

from __future__ import annotations

from visionloop.cli.reference.markdown import GENERATED


def model_page() -> str:
    from visionloop.simulation.model_card import card_markdown
    from visionloop.simulation.shipped_model import shipped_card

    card = shipped_card()
    if card is None:
        return (
            GENERATED
            + "# Bootstrap model card\n\nThis installation ships no bootstrap model: `make bootstrap` trains one.\n"
        )
    return GENERATED + card_markdown(card)
