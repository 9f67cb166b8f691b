"""mmrag's core: settings, embedders, vector stores, search and answerers."""
