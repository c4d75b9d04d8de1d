# The article's apis/test/tasks.py with celery -> celeriac. requests + bs4 become httpx +
# defusedxml (the standard library's parser with DTDs and entities refused); there is no
# Django model here, so the task returns the string the model's __str__ would have made.
import logging
import os
from time import sleep

import httpx
from defusedxml.ElementTree import fromstring

from proj.celery import app

logger = logging.getLogger(__name__)

# The real service is https://teht.hometax.go.kr/wqAction.do; by default, the stand-in
# started with `python -m celeriac.demo.standin --port 8123`.
HOMETAX_URL = os.environ.get("HOMETAX_URL", "http://127.0.0.1:8123/wqAction.do")


def get_retry_client() -> httpx.Client:
    """
    - the article mounted requests' Retry adapter; httpx's transport retries failed
      connections the same number of times
    """
    retries_number = 3
    return httpx.Client(transport=httpx.HTTPTransport(retries=retries_number))


@app.task
def check_registration_number_from_hometax(registration_number=1208801280):
    # The article added this so that get() is called before the task finishes.
    sleep(1)
    s = get_retry_client()

    url = HOMETAX_URL
    querystring = {"actionId": "ATTABZAA001R08"}
    payload = f"""
        <map id="ATTABZAA001R08">
            <pubcUserNo/>
            <mobYn>N</mobYn>
            <inqrTrgtClCd>1</inqrTrgtClCd>
            <txprDscmNo>{registration_number}</txprDscmNo>
            <dongCode>88</dongCode>
            <psbSearch>Y</psbSearch>
            <map id="userReqInfoVO"/>
        </map>
    """
    headers = {"Accept": "application/xml; charset=UTF-8"}
    with s:
        res = s.post(url, content=payload.encode(), headers=headers, params=querystring, timeout=2)

    # xml return: a reply declaring a DTD is refused in any encoding (defusedxml raises)
    root = fromstring(res.content, forbid_dtd=True)
    result: str = (root.findtext("smpcBmanTrtCntn") or "").strip()
    logger.info(f"{res}, {registration_number}")

    is_closed = True
    if result == "등록되어 있는 사업자등록번호 입니다.":
        is_closed = False

    return f"{registration_number}: {'closed' if is_closed else 'not close'}"
