"""The credit report (XLSX and one offline HTML page) and the registration-deadline warnings."""
